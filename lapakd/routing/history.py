"""The desk's own decided complaints as labelled cases (`lapakd rules eval --history`).

A complaint's agencies count as confirmed when a person stands behind them: an admin routed it
(`lapakd assign`, `Teruskan:` — a `routed` event whose actor is not the rules), or an agency
answered it (answered, resolved, waiting for budget) without having it reassigned. A complaint
the desk rejected without any agency is labelled `triage`: no agency should have had it.
Merged duplicates are left out (their original is counted).
"""

from __future__ import annotations

import json

from lapakd.rules.measure import Case
from lapakd.store import Store

CONFIRMED_BY_AGENCY = ("answered", "resolved", "waiting_budget")


def decided_cases(store: Store) -> list[Case]:
    """Every decided complaint, oldest first, with the agencies a person confirmed."""
    rows = store.all(
        "SELECT c.id, c.ticket, c.subject, c.text, c.channel, c.sender, c.status, c.agencies,"
        " EXISTS (SELECT 1 FROM events e WHERE e.complaint_id = c.id AND e.type = 'routed'"
        "         AND e.actor != 'rules') AS by_admin"
        " FROM complaints c WHERE c.merged_into IS NULL ORDER BY c.id"
    )
    cases = []
    for row in rows:
        agencies = tuple(json.loads(row["agencies"] or "[]"))
        if agencies and (row["by_admin"] or row["status"] in CONFIRMED_BY_AGENCY):
            acceptable = agencies
        elif not agencies and row["status"] == "rejected":
            acceptable = ()
        else:
            continue  # nobody has confirmed the rules' answer (or any) yet
        cases.append(Case(
            text=row["text"] or "", acceptable=acceptable, where=row["ticket"],
            subject=row["subject"] or None, channel=row["channel"], sender=row["sender"],
        ))
    return cases
