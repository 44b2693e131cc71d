"""Outbox: every side effect is a row first (queue.py); `lapakd.delivery` sends the rows."""
