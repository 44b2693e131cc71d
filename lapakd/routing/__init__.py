"""Routing: the rules engine (`rules/`) and applying its decisions to complaints."""
