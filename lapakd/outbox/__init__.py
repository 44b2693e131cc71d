"""Outbox: every side effect as a row first; claiming, sending and marking it."""
