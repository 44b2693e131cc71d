"""Load `rules/*.yaml` into a RuleSet, reporting every problem as `file:line: message (hint)`."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from lapakd.channels import known as channel_keys
from lapakd.errors import RulesError
from lapakd.rules.engine import WEIGHT_RANGE, Agency, Rule, RuleSet
from lapakd.rules.language import LANGUAGES
from lapakd.rules.text import Keyword

AGENCIES_FILE = "agencies.yaml"
WHEN_KEYS = ("any", "all", "none", "context", "regex", "channel", "sender", "language")
RULE_KEYS = (
    "name", "category", "when", "forward", "ignore", "triage", "budget_dependent", "continue",
    "public", "sla_days", "weight",
)
AGENCY_KEYS = ("name", "email", "cc", "sla_days")
EXAMPLE_KEYS = ("text", "expect", "channel", "sender")
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def rules_files(rules_dir: Path) -> list[Path]:
    """Every rules file (agencies.yaml included), `*.yaml` then `*.yml`, each by name."""
    return sorted(rules_dir.glob("*.yaml")) + sorted(rules_dir.glob("*.yml"))


def rules_signature(rules_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Changes whenever a rules file is added, removed or edited (cheap: stat only)."""
    out = []
    for path in rules_files(rules_dir):
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def load_rules(rules_dir: Path, *, display_root: Path | None = None) -> RuleSet:
    """Load and validate every rules file; raise RulesError listing all problems found."""
    rules_dir = Path(rules_dir)
    loader = _Loader(rules_dir, display_root)
    return loader.load()


class _Loader:
    def __init__(self, rules_dir: Path, display_root: Path | None) -> None:
        self.rules_dir = rules_dir
        self.display_root = display_root
        self.problems: list[str] = []

    def where(self, path: Path, line: int | None) -> str:
        try:
            shown = path.relative_to(self.display_root) if self.display_root else path
        except ValueError:
            shown = path
        return f"{shown}:{line}" if line is not None else f"{shown}"

    def problem(self, path: Path, line: int | None, message: str) -> None:
        self.problems.append(f"{self.where(path, line)}: {message}")

    def read(self, path: Path) -> Any:
        yaml = YAML(typ="rt")
        try:
            return yaml.load(path.read_text(encoding="utf-8"))
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = exc.problem or exc.context or "syntax error"
            if exc.context_mark is not None and exc.context and (
                "end of stream" in what or "<stream end>" in what
            ):
                # An unclosed quote or bracket: the end of the file (a line past the last one)
                # is no help; point at where the quoted scalar / flow collection was opened.
                mark = exc.context_mark
                what = f"{what} {exc.context}"
            line = mark.line + 1 if mark else None
            self.problem(path, line, f"YAML syntax error: {what} (check indentation and quotes)")
        except YAMLError as exc:
            self.problem(path, None, f"YAML error: {exc}")
        except UnicodeDecodeError:
            self.problem(path, None, "not UTF-8 text (save the file as UTF-8)")
        except OSError as exc:
            self.problem(path, None, f"cannot read: {exc.strerror}")
        return None

    def load(self) -> RuleSet:
        if not self.rules_dir.is_dir():
            raise RulesError([f"{self.rules_dir}: rules directory not found (paths.rules_dir)"])
        signature = rules_signature(self.rules_dir)
        agencies = self.load_agencies(self.rules_dir / AGENCIES_FILE)
        rules: list[Rule] = []
        examples: list[dict[str, Any]] = []
        seen: dict[str, str] = {}
        files = sorted(
            p for p in [*self.rules_dir.glob("*.yaml"), *self.rules_dir.glob("*.yml")]
            if p.name != AGENCIES_FILE
        )
        for path in files:
            self.load_rules_file(path, agencies, rules, examples, seen)
        if self.problems:
            raise RulesError(self.problems)
        return RuleSet(agencies, rules, examples, signature)

    # -- agencies ---------------------------------------------------------------------------

    def load_agencies(self, path: Path) -> dict[str, Agency]:
        if not path.is_file():
            self.problem(path, None, "missing: every forward names an agency defined here")
            return {}
        doc = self.read(path)
        if doc is None:
            return {}
        if not isinstance(doc, CommentedMap) or "agencies" not in doc:
            self.problem(path, 1, "expected a top-level `agencies:` mapping")
            return {}
        for key in doc:
            if key != "agencies":
                self.problem(path, _key_line(doc, key), f"unknown top-level key {key!r}")
        table = doc["agencies"]
        if not isinstance(table, CommentedMap):
            self.problem(path, _line(doc), "`agencies:` must map agency keys to their details")
            return {}
        agencies: dict[str, Agency] = {}
        for key, entry in table.items():
            line = _key_line(table, key)
            if not isinstance(key, str) or not _KEY_RE.match(key):
                self.problem(
                    path, line,
                    f"agency key {key!r} must be lowercase letters, digits, '-', '_' or '.'",
                )
                continue
            if not isinstance(entry, CommentedMap):
                self.problem(path, line, f"agency {key!r} must have name and email")
                continue
            for k in entry:
                if k not in AGENCY_KEYS:
                    self.problem(
                        path, _key_line(entry, k),
                        f"unknown key {k!r} in agency {key!r}{_hint(k, AGENCY_KEYS)}",
                    )
            name, email = entry.get("name"), entry.get("email")
            if not isinstance(name, str) or not name.strip():
                self.problem(path, line, f"agency {key!r} needs a `name:`")
            if not isinstance(email, str) or not _EMAIL_RE.match(email.strip()):
                self.problem(
                    path, _key_line(entry, "email") if "email" in entry else line,
                    f"agency {key!r} needs a valid `email:` address, got {email!r}",
                )
                continue
            cc = entry.get("cc", [])
            if isinstance(cc, str):
                cc = [cc]
            if not isinstance(cc, list) or not all(
                isinstance(c, str) and _EMAIL_RE.match(c) for c in cc
            ):
                self.problem(path, _key_line(entry, "cc"), "`cc:` must be a list of addresses")
                cc = []
            sla = entry.get("sla_days")
            if sla is not None and (not isinstance(sla, int) or isinstance(sla, bool) or sla < 1):
                self.problem(
                    path, _key_line(entry, "sla_days"), "`sla_days:` must be a whole number ≥ 1"
                )
                sla = None
            agencies[key] = Agency(
                key, str(name or key).strip(), email.strip().lower(),
                tuple(c.strip().lower() for c in cc), sla,
            )
        return agencies

    # -- rules ------------------------------------------------------------------------------

    def load_rules_file(
        self,
        path: Path,
        agencies: dict[str, Agency],
        rules: list[Rule],
        examples: list[dict[str, Any]],
        seen: dict[str, str],
    ) -> None:
        doc = self.read(path)
        if doc is None:
            return
        if not isinstance(doc, CommentedMap):
            self.problem(path, 1, "expected a mapping with `rules:` (and optional `examples:`)")
            return
        for key in doc:
            if key not in ("rules", "examples"):
                self.problem(
                    path, _key_line(doc, key),
                    f"unknown top-level key {key!r}{_hint(key, ('rules', 'examples'))}",
                )
        raw_rules = doc.get("rules", [])
        if raw_rules is None:
            raw_rules = []
        if not isinstance(raw_rules, list):  # CommentedSeq, or the default [] when absent
            self.problem(path, _key_line(doc, "rules"), "`rules:` must be a list of rules")
            raw_rules = []
        for index, entry in enumerate(raw_rules):
            line = _item_line(raw_rules, index)
            rule = self.load_rule(path, line, entry, agencies)
            if rule is None:
                continue
            if rule.name in seen:
                self.problem(
                    path, line, f"duplicate rule name {rule.name!r} (first at {seen[rule.name]})"
                )
                continue
            seen[rule.name] = rule.where
            rules.append(rule)
        raw_examples = doc.get("examples", []) or []
        if not isinstance(raw_examples, list):  # CommentedSeq, or the default [] when absent
            self.problem(path, _key_line(doc, "examples"), "`examples:` must be a list")
            return
        for index, ex in enumerate(raw_examples):
            line = _item_line(raw_examples, index)
            if not isinstance(ex, CommentedMap) or not isinstance(ex.get("text"), str):
                self.problem(path, line, "an example needs `text:` and `expect:`")
                continue
            for k in ex:
                if k not in EXAMPLE_KEYS:
                    self.problem(
                        path, _key_line(ex, k),
                        f"unknown key {k!r} in example{_hint(k, EXAMPLE_KEYS)}",
                    )
            expect = ex.get("expect")
            expected = [expect] if isinstance(expect, str) else expect
            if not isinstance(expected, list) or not expected or not all(
                isinstance(e, str) for e in expected
            ):
                self.problem(
                    path, line, "`expect:` must be an agency key, a list of them, ignore or triage"
                )
                continue
            for e in expected:
                if e not in ("ignore", "triage") and e not in agencies:
                    self.problem(
                        path, _key_line(ex, "expect"),
                        f"example expects unknown agency {e!r}{_hint(e, agencies)}",
                    )
            examples.append({
                "text": ex["text"], "expect": expected, "channel": ex.get("channel"),
                "sender": ex.get("sender"), "where": self.where(path, line),
            })

    def load_rule(
        self, path: Path, line: int, entry: Any, agencies: dict[str, Agency]
    ) -> Rule | None:
        if not isinstance(entry, CommentedMap):
            self.problem(path, line, "a rule must be a mapping with name, when and forward")
            return None
        before = len(self.problems)
        for k in entry:
            if k in WHEN_KEYS:
                self.problem(path, _key_line(entry, k), f"`{k}:` belongs under `when:`")
            elif k not in RULE_KEYS:
                self.problem(
                    path, _key_line(entry, k), f"unknown rule key {k!r}{_hint(k, RULE_KEYS)}"
                )
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            self.problem(path, line, "rule needs a `name:`")
            name = f"<rule at line {line}>"
        rule = Rule(name=name.strip(), file=self.where(path, None), line=line)
        category = entry.get("category")
        if category is not None and not isinstance(category, str):
            self.problem(path, _key_line(entry, "category"), "`category:` must be text")
        rule.category = category.strip() if isinstance(category, str) else None
        for flag in ("budget_dependent", "continue", "public", "ignore", "triage"):
            if flag in entry and not isinstance(entry[flag], bool):
                self.problem(
                    path, _key_line(entry, flag), f"`{flag}:` must be true or false"
                )
        rule.budget_dependent = entry.get("budget_dependent") is True
        rule.continue_ = entry.get("continue") is True
        rule.public = entry.get("public", True) is not False
        sla = entry.get("sla_days")
        if sla is not None and (not isinstance(sla, int) or isinstance(sla, bool) or sla < 1):
            self.problem(path, _key_line(entry, "sla_days"), "`sla_days:` must be a number ≥ 1")
        rule.sla_days = sla if isinstance(sla, int) and not isinstance(sla, bool) else None
        if "weight" in entry:
            weight = entry["weight"]
            low, high = WEIGHT_RANGE
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
                low <= weight <= high
            ):
                self.problem(
                    path, _key_line(entry, "weight"),
                    f"`weight:` must be a number from {low:g} to {high:g} (default 1), "
                    f"got {weight!r}",
                )
            else:
                rule.weight = float(weight)

        actions = [a for a in ("forward", "ignore", "triage") if a in entry]
        actions = [a for a in actions if a == "forward" or entry[a] is True]
        if len(actions) != 1:
            self.problem(
                path, line,
                f"rule {rule.name!r} needs exactly one of `forward: <agency>`, `ignore: true`, "
                "`triage: true`",
            )
        elif actions[0] == "forward":
            fwd = entry["forward"]
            keys = [fwd] if isinstance(fwd, str) else fwd
            fline = _key_line(entry, "forward")
            if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
                self.problem(path, fline, "`forward:` must be an agency key or a list of them")
            else:
                for key in keys:
                    if key not in agencies:
                        self.problem(
                            path, fline,
                            f"unknown agency {key!r} in rule {rule.name!r}{_hint(key, agencies)}"
                            f" (agencies are defined in {AGENCIES_FILE})",
                        )
                rule.forward = tuple(keys)
            rule.action = "forward"
        else:
            rule.action = actions[0]

        when = entry.get("when")
        if when is None:
            self.problem(path, line, f"rule {rule.name!r} needs a `when:` with conditions")
        elif not isinstance(when, CommentedMap):
            self.problem(path, _key_line(entry, "when"), "`when:` must be a mapping")
        else:
            self.load_when(path, rule, when)
        return rule if len(self.problems) == before else None

    def load_when(self, path: Path, rule: Rule, when: CommentedMap) -> None:
        for k in when:
            if k not in WHEN_KEYS:
                self.problem(
                    path, _key_line(when, k), f"unknown condition {k!r}{_hint(k, WHEN_KEYS)}"
                )
        for key in ("any", "all", "none", "context"):
            value = when.get(key)
            if value is None:
                continue
            kline = _key_line(when, key)
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
                self.problem(path, kline, f"`{key}:` must be a list of words or phrases")
                continue
            keywords = []
            for v in value:
                kw = Keyword.parse(str(v))
                if not kw.parts:
                    self.problem(path, kline, f"keyword {v!r} in `{key}:` has no letters or digits")
                    continue
                keywords.append(kw)
            setattr(rule, key, keywords)
        if "context" in when and not (when.get("any") or when.get("all") or when.get("regex")):
            self.problem(
                path, _key_line(when, "context"),
                "`context:` words only count beside the rule's own evidence: add `any:` (or "
                "`all:`, `regex:`) to this rule",
            )
        regex = when.get("regex")
        if regex not in (None, ""):
            if not isinstance(regex, str):
                self.problem(path, _key_line(when, "regex"), "`regex:` must be text")
            else:
                try:
                    rule.regex = re.compile(regex, re.IGNORECASE)
                except re.error as exc:
                    self.problem(
                        path, _key_line(when, "regex"),
                        f"bad regex {regex!r}: {exc.msg} at position {exc.pos} "
                        "(quote it in single quotes; escape \\ as \\\\ in double quotes)",
                    )
        channels = when.get("channel") or []
        if isinstance(channels, str):
            channels = [channels]
        if not isinstance(channels, list):
            self.problem(path, _key_line(when, "channel"), "`channel:` must be a list")
            channels = []
        for ch in channels:
            if ch not in channel_keys():
                self.problem(
                    path, _key_line(when, "channel"),
                    f"unknown channel {ch!r} (one of {', '.join(channel_keys())})"
                    f"{_hint(ch, channel_keys())}",
                )
        rule.channel = tuple(channels)
        senders = when.get("sender") or []
        if isinstance(senders, str):
            senders = [senders]
        if not isinstance(senders, list) or not all(isinstance(s, str) for s in senders):
            self.problem(path, _key_line(when, "sender"), "`sender:` must be a list of globs")
            senders = []
        rule.sender = tuple(s.lower() for s in senders)
        languages = when.get("language") or []
        if isinstance(languages, str):
            languages = [languages]
        if not isinstance(languages, list):
            self.problem(path, _key_line(when, "language"), "`language:` must be a list")
            languages = []
        for lang in languages:
            if lang not in LANGUAGES:
                self.problem(
                    path, _key_line(when, "language"),
                    f"unknown language {lang!r} (one of {', '.join(LANGUAGES)})"
                    f"{_hint(lang, LANGUAGES)}",
                )
        rule.language = tuple(languages)


def _line(node: Any) -> int | None:
    lc = getattr(node, "lc", None)
    return lc.line + 1 if lc is not None else None


def _key_line(node: Any, key: Any) -> int | None:
    try:
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return _line(node)


def _item_line(seq: Any, index: int) -> int:
    try:
        return seq.lc.item(index)[0] + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return _line(seq) or 1


def _hint(word: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
