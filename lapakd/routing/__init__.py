"""Routing: applying the rules engine's decisions (`lapakd.rules`) to complaints; due dates and
the kecamatan of a complaint."""
