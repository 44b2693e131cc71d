"""Watching the desk from outside: the status checks, Prometheus metrics and /healthz."""
