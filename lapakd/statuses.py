"""A complaint's statuses: their keys, their Indonesian labels and the groups they fall into.

The one place that names them. The lifecycle sets them, the public site, the mails to citizens
and agencies, the deadlines and the CLI read them from here. Imports nothing of lapakd.
"""

from __future__ import annotations

# key -> the Indonesian label citizens and agencies read, lower case as it stands inside a
# sentence ("Status aduan saat ini: ditanggapi."); the public site capitalises it (`heading`).
LABELS: dict[str, str] = {
    "new": "baru",
    "triage": "menunggu verifikasi",
    "forwarded": "diteruskan",
    "answered": "ditanggapi",
    # the agency says it is done; the citizen is asked (SUDAH/BELUM) before it closes
    "resolved": "selesai, menunggu konfirmasi pelapor",
    "closed": "selesai dan ditutup",
    "reopened": "dibuka kembali",
    "rejected": "ditolak",
    "waiting_budget": "menunggu anggaran",
    "ignored": "diabaikan",
    "quarantined": "dikarantina",
}
KEYS = tuple(LABELS)

# Still on the desk's books (the weekly digest counts them per status). `resolved` waits for the
# citizen's SUDAH/BELUM (or `[desk] confirm_days` without objection) before it is `closed`.
OPEN = ("triage", "forwarded", "answered", "waiting_budget", "reopened", "resolved")
# Closed: `closed_at` is set when a complaint enters one of these.
CLOSED = ("closed", "rejected", "ignored")
# An answer to the citizen: setting one is a public update, relayed; the site counts it answered.
ANSWERS = ("answered", "resolved", "closed", "reopened", "rejected", "waiting_budget")
# Settled for good (the public statistics' "selesai" share).
SETTLED = ("closed", "rejected")
# Statuses an admin may set by hand (`new`/`quarantined` belong to the pipeline).
SETTABLE = ("triage", "forwarded", "answered", "resolved", "closed", "reopened", "rejected",
            "waiting_budget", "ignored")
# Waiting for a first answer: the public site marks these late once `due_at` has passed.
AWAITING_ANSWER = ("triage", "forwarded")
# The first clock (`due_at`, `sla_days`) runs: reminders, escalation and `lapakd list --overdue
# first` look at these. An answer (`diproses`) stops it.
DEADLINE_RUNNING = ("forwarded",)
# The second clock (`resolve_due_at`, the agency's `resolve_days`) runs until the agency says
# `selesai` (or rejects); a citizen's BELUM starts it again. Budget-bound complaints have none.
RESOLVE_RUNNING = ("forwarded", "answered", "reopened")
# Waiting for the citizen's confirmation after the agency's `selesai`.
AWAITING_CONFIRMATION = ("resolved",)
# Still the agency's to do: its page on the public site lists these and its figures count them
# open (a complaint waiting for the citizen's confirmation is not).
WITH_AGENCY = tuple(s for s in OPEN if s not in AWAITING_CONFIRMATION)
# Never on the public site: not routed yet (the rules may still say `public: false`), spam,
# or broken.
UNPUBLISHED = ("new", "ignored", "quarantined")


def sql_list(group: tuple[str, ...]) -> str:
    """A group as an SQL list's inside (`'triage', 'forwarded'`): the keys are fixed words."""
    return ", ".join(f"'{key}'" for key in group)


def label(status: str) -> str:
    """The status as it stands in a sentence ("ditanggapi"); an unknown key as it is."""
    return LABELS.get(status, status)


def heading(status: str) -> str:
    """The status as the public site shows it on its own ("Ditanggapi")."""
    text = label(status)
    return text[:1].upper() + text[1:]


def headings() -> dict[str, str]:
    """Every status's `heading`, for the public site's templates and its filter."""
    return {key: heading(key) for key in LABELS}
