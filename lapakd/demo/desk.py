"""Who the demo desk is: its addresses, the folder names it writes, its one error type."""

from zoneinfo import ZoneInfo

DESK_EMAIL = "aduan@lapak.test"  # the desk's mailbox: IMAP login, and From of every forward
DESK_PASSWORD = "demo-lapak-aduan"  # demo only: the IMAP server lives and dies with this process
ADMIN_EMAIL = "admin@lapak.test"  # receives triage notes and alerts
MARKER = ".lapakd-demo"  # says "lapakd demo made this folder": only then is it cleaned
OUTBOX_MAIL = "outbox-mail"  # what the agencies received, one .eml per email
WIB = ZoneInfo("Asia/Jakarta")


class DemoError(Exception):
    """The demo cannot go on; the message is the one line the user sees."""
