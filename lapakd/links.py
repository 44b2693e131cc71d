"""Where a complaint lives on the public site: the one function that builds its address.

Every mail, chat reply and page that points at a complaint goes through here, so the site's
layout (`aduan/<ticket>.html`) is written once. Imports nothing of lapakd.
"""

from __future__ import annotations

TICKET_DIR = "aduan"  # the detail pages' folder in every build of the site


def ticket_path(ticket: str) -> str:
    """The complaint's page relative to the site's root: `aduan/LA-2026-000042.html`."""
    return f"{TICKET_DIR}/{ticket}.html"


def ticket_url(public_url: str, ticket: str) -> str:
    """The complaint's page as citizens and agencies open it (`[desk] public_url` + path)."""
    return f"{public_url.rstrip('/')}/{ticket_path(ticket)}"
