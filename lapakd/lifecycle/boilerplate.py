"""The desk's own text, recognised when it comes back inside a reply.

An agency's mail client may put the whole forward under its answer without quoting it (Outlook
does, under a `From:`/`Sent:` block of display names only). Whatever the client did, the desk's
own lines must not be published as the agency's answer, and the forward's contact block (the
citizen's name and address) must never reach the site or the relay to the citizen.

The markers are derived from the templates themselves (`lapakd/templates/*.txt.j2`): every line
with enough fixed words becomes a pattern (Jinja expressions match anything), so editing a
template moves the guard with it. The contact block is the line that introduces
`{{ contact }}` in a template (or the line holding it).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass

# Mail the desk sends that an agency or the admin may answer or paste back.
TEMPLATES = ("forward.txt.j2", "relay.txt.j2", "reminder.txt.j2", "escalation.txt.j2",
             "triage.txt.j2", "confirm_ask.txt.j2", "reopen.txt.j2", "budget_ask.txt.j2")
# A template line is a marker when its fixed text has at least this many words: short lines
# ("Status: selesai", "Isi aduan:", "Yth. {{ agency.name }},") are what answers say too.
MIN_WORDS = 4

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}")
_CONTACT_EXPR = re.compile(r"\{\{-?\s*contact\s*-?\}\}")
_WORD = re.compile(r"[^\W\d_]{2,}")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Markers:
    lines: tuple[re.Pattern[str], ...]  # fixed lines of the desk's mail
    contact: tuple[re.Pattern[str], ...]  # the line that introduces the citizen's contact
    # whole lines above a template's first fixed line ("Yth. {{ agency.name }},"): removed
    # with the desk's text when they stand right above it
    lead: tuple[re.Pattern[str], ...] = ()


def _literal_pattern(text: str) -> str:
    """Fixed text as a pattern that tolerates changed spacing (re-wrapped, HTML-converted)."""
    return r"\s*".join(re.escape(t) for t in _TOKEN.findall(text))


def _line_pattern(line: str) -> str:
    """A template line as a prefix pattern; `.*?` for each expression, never next to `\\s*`
    (two ways to match the same spaces would make a long hostile line cost quadratic time)."""
    parts: list[str] = []
    pos = 0
    for m in _JINJA.finditer(line):
        literal = line[pos:m.start()]
        if literal.strip():
            parts.append(_literal_pattern(literal))
        if m.group(0).startswith("{{") and parts[-1:] != [".*?"]:
            parts.append(".*?")
        pos = m.end()
    if line[pos:].strip():
        parts.append(_literal_pattern(line[pos:]))
    pattern = "^"
    for part in parts:
        wild = part == ".*?" or pattern.endswith(".*?")
        pattern += part if wild or pattern == "^" else r"\s*" + part
    return pattern if pattern.startswith("^.*?") else "^\\s*" + pattern[1:]


def _contact_intro(line: str) -> str | None:
    """`Kontak pengadu (untuk ...):` → a pattern for its leading words (`Kontak pengadu`)."""
    fixed = _JINJA.sub("", line).strip()
    m = re.match(r"[^\W\d_][^\W\d_\s]*(?:\s+[^\W\d_]+)*", fixed)
    if m is None:
        return None
    rest = fixed[m.end():].lstrip()
    tail = r"\s*[(:]" if rest[:1] in ("(", ":") else r"\b"
    return r"^\s*" + r"\s+".join(re.escape(w) for w in m.group(0).split()) + tail


def derive(sources: dict[str, str]) -> Markers:
    """Markers from template sources (name → text)."""
    lines: dict[str, re.Pattern[str]] = {}
    contact: dict[str, re.Pattern[str]] = {}
    lead: dict[str, re.Pattern[str]] = {}
    for source in sources.values():
        previous = ""
        above: list[str] = []  # fixed lines before this template's first marker
        seen_marker = False
        for raw in source.splitlines():
            line = raw.strip()
            if not line:
                continue
            if _CONTACT_EXPR.search(line):
                fixed = _JINJA.sub("", line).strip()
                intro = _contact_intro(line if fixed else previous)
                if intro:
                    contact.setdefault(intro, re.compile(intro, re.I))
            fixed = _JINJA.sub(" ", line)
            if len(_WORD.findall(fixed)) >= MIN_WORDS:
                pattern = _line_pattern(line)
                lines.setdefault(pattern, re.compile(pattern, re.I))
                seen_marker = True
            elif not seen_marker and _JINJA.sub("", line).strip():
                above.append(_line_pattern(line) + r"\s*$")
            if _JINJA.sub("", line).strip():
                previous = line
        if seen_marker:
            for pattern in above:
                lead.setdefault(pattern, re.compile(pattern, re.I))
    return Markers(tuple(lines.values()), tuple(contact.values()), tuple(lead.values()))


@functools.cache
def markers() -> Markers:
    """The markers of the shipped templates (read once per process)."""
    folder = importlib.resources.files("lapakd.mail") / "templates"
    return derive({name: (folder / name).read_text(encoding="utf-8") for name in TEMPLATES})


def is_contact_line(line: str) -> bool:
    return any(p.match(line) for p in markers().contact)


# Template lines are short: a longer line is not one of them, and is not scanned at length.
_MAX_LINE = 1000


def is_desk_line(line: str) -> bool:
    return len(line) <= _MAX_LINE and any(p.match(line) for p in markers().lines)


def desk_text_start(lines: list[str]) -> int | None:
    """Index of the first line of the desk's own mail in `lines`, or None.

    One line alone may be a coincidence ("Terima kasih atas kerja samanya." is also what an
    agency writes), so a boilerplate line counts only when another one follows; a contact
    line counts on its own."""
    hits: list[int] = []
    start = None
    for i, line in enumerate(lines):
        if is_contact_line(line):
            start = hits[0] if hits else i
            break
        if is_desk_line(line):
            hits.append(i)
            if len(hits) >= 2:
                start = hits[0]
                break
    if start is None:
        return None
    # The template's opening lines ("Yth. Dinas ...,") belong to the desk's text too.
    lead = markers().lead
    i = start - 1
    while i >= 0 and (not lines[i].strip() or (
            len(lines[i]) <= _MAX_LINE and any(p.match(lines[i]) for p in lead))):
        if lines[i].strip():
            start = i
        i -= 1
    return start


def cut_desk_text(text: str) -> str:
    """`text` up to the desk's own mail (see desk_text_start), trailing blank lines removed."""
    lines = text.split("\n")
    start = desk_text_start(lines)
    if start is None:
        return text
    return "\n".join(lines[:start]).rstrip()


def scrub(text: str, contact: str | None = None) -> str:
    """The last guard before an answer is published or relayed: the desk's own mail cut off,
    and any line carrying the citizen's contact as the forward wrote it removed."""
    text = cut_desk_text(text)
    if contact and contact.strip():
        needle = contact.strip().lower()
        text = "\n".join(line for line in text.split("\n") if needle not in line.lower())
    return text
