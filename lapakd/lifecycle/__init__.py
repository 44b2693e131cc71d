"""Lifecycle: after forwarding — replies, statuses, deadlines, reminders, digest, admin verbs."""
