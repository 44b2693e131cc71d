"""Lifecycle: after forwarding — replies, statuses, reminders, escalation, digest (the admin's
verbs are `lapakd.cli.admin`)."""
