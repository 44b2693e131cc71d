"""The labelled texts the model learns from: the rules' `examples:` and the desk's decisions.

A label is the class a complaint's text belongs to: an agency key, `triage` (the desk's
agencies are not the right addressee: an outside body such as PLN, BPN or the police) or
`ignore` (spam; from the examples only). What counts as a decision, per complaint, from the
events table (the latest admin decision wins):

- `lapakd assign` and a triage email answered with `Teruskan:` (a `routed` event by an actor
  other than the rules or the model): its agencies;
- `Tolak:` (or `lapakd set-status ... rejected`) of a complaint that was never forwarded (from
  triage): `triage`. A rejection after forwarding says the complaint was invalid or not that
  agency's, not where it belongs: no label, and it cancels the agency's answer below;
- `lapakd merge DUP INTO`: the duplicate gets the label of INTO (its admin label, its agency's
  answer, else the agencies it went to);
- an agency that answers (`agency_reply`) without rejecting: that agency, unless an admin
  decided otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lapakd.rules import RuleSet
    from lapakd.store import Store

TRIAGE = "triage"
IGNORE = "ignore"
NOT_AGENCIES = (TRIAGE, IGNORE)
# Actors whose `routed` events are the machine's, not an admin's decision.
MACHINE_ACTORS = ("rules", "model")
_NEVER_FORWARDED = ("triage", "new", "quarantined")


@dataclass(frozen=True)
class Label:
    text: str
    label: str  # an agency key, TRIAGE or IGNORE
    source: str  # example | assign | reject | merge | answer
    ref: str  # file:line of the example, or the ticket


def example_labels(rules: RuleSet) -> list[Label]:
    """One label per expected class of each `examples:` entry (every agency of a multi-agency
    example: each is right for the text)."""
    return [
        Label(ex["text"], expected, "example", ex.get("where", ""))
        for ex in rules.examples
        for expected in ex["expect"]
        if ex["text"].strip()
    ]


def desk_labels(store: Store) -> list[Label]:
    """The desk's own decisions, one label per (complaint, class); see the module's rules."""
    admin: dict[int, tuple[list[str], str]] = {}
    answered: dict[int, list[str]] = {}
    protested: set[int] = set()
    merged_into: dict[int, str] = {}
    for e in store.all(
        "SELECT complaint_id, type, actor, data FROM events WHERE complaint_id IS NOT NULL"
        " AND type IN ('routed', 'status_changed', 'merged', 'agency_reply') ORDER BY id"
    ):
        cid, data = e["complaint_id"], json.loads(e["data"])
        if e["type"] == "routed":
            if e["actor"] not in MACHINE_ACTORS and data.get("action") == "forward":
                admin[cid] = (list(data.get("agencies") or []), "assign")
        elif e["type"] == "status_changed":
            if data.get("to") == "rejected":
                if data.get("from") in _NEVER_FORWARDED:
                    admin[cid] = ([TRIAGE], "reject")
                else:
                    protested.add(cid)
        elif e["type"] == "merged":
            merged_into[cid] = str(data.get("into") or "")
        elif e["type"] == "agency_reply":
            if data.get("status") == "rejected":
                protested.add(cid)
            elif data.get("agency"):
                answered.setdefault(cid, []).append(data["agency"])
    rows = {
        r["id"]: r for r in store.all(
            "SELECT id, ticket, subject, text, status, agencies FROM complaints")
    }
    by_ticket = {r["ticket"]: cid for cid, r in rows.items()}

    def own_label(cid: int) -> tuple[list[str], str] | None:
        if cid in admin:
            return admin[cid]
        if cid in answered and cid not in protested:
            return list(dict.fromkeys(answered[cid])), "answer"
        return None

    out: list[Label] = []
    for cid, row in rows.items():
        found = own_label(cid) if cid not in merged_into or cid in admin else None
        if found is None and cid in merged_into:
            into = by_ticket.get(merged_into[cid])
            if into is not None:
                target = own_label(into)
                if target is None and rows[into]["status"] not in _NEVER_FORWARDED:
                    target = (json.loads(rows[into]["agencies"] or "[]"), "merge")
                if target is not None:
                    found = (target[0], "merge")
        if found is None:
            continue
        text = "\n".join(p for p in (row["subject"], row["text"]) if p)
        if not text.strip():
            continue
        out.extend(Label(text, label, found[1], row["ticket"]) for label in found[0] if label)
    return out


def all_labels(rules: RuleSet, store: Store | None) -> list[Label]:
    """The examples, then the desk's labels (the store's, when there is one)."""
    return example_labels(rules) + (desk_labels(store) if store is not None else [])
