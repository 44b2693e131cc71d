"""The compiled-rules cache (`data_dir/rules.cache`): used only while it matches the files.

Real YAML files in tmp_path, the real loader, the real cache file."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from lapakd.errors import RulesError
from lapakd.rules import load_rules
from lapakd.rules.cache import CACHE_FILE, load_rules_cached

REPO = Path(__file__).resolve().parent.parent

RULES = """\
rules:
  - name: jalan-rusak
    category: PEKERJAAN UMUM
    when: {any: [jalan rusak, "lubang*"]}
    forward: dpupr
"""
AGENCIES = """\
agencies:
  dpupr: {name: Dinas PUPR, email: dpupr@banyumas.example}
  dlh: {name: Dinas Lingkungan Hidup, email: dlh@banyumas.example}
"""


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    rules_dir, data_dir = tmp_path / "rules", tmp_path / "var"
    rules_dir.mkdir()
    data_dir.mkdir()
    (rules_dir / "agencies.yaml").write_text(AGENCIES, encoding="utf-8")
    (rules_dir / "routing.yaml").write_text(RULES, encoding="utf-8")
    return rules_dir, data_dir


def _plant(cache: Path, rules_dir: Path, marker_rules: str) -> None:
    """Replace the cached RuleSet (same key) by one compiled from other rules: a load that
    returns the marker rule read the cache, one that does not read the YAML."""
    other = cache.parent / "other-rules"
    shutil.copytree(rules_dir, other)
    (other / "routing.yaml").write_text(marker_rules, encoding="utf-8")
    key = cache.read_bytes()[:32]
    cache.write_bytes(key + pickle.dumps(load_rules(other)))
    shutil.rmtree(other)


MARKER = RULES.replace("jalan-rusak", "from-the-cache")


def test_first_load_writes_the_cache_and_the_next_one_uses_it(dirs: tuple[Path, Path]) -> None:
    rules_dir, data_dir = dirs
    first = load_rules_cached(rules_dir, data_dir)
    cache = data_dir / CACHE_FILE
    assert cache.exists()
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    assert [r.name for r in first.rules] == ["jalan-rusak"]

    _plant(cache, rules_dir, MARKER)
    again = load_rules_cached(rules_dir, data_dir)
    assert [r.name for r in again.rules] == ["from-the-cache"]
    decision = again.evaluate("jalan rusak parah di depan balai desa")
    assert decision.action == "forward" and decision.agencies == ["dpupr"]


def test_an_edited_file_is_loaded_again(dirs: tuple[Path, Path]) -> None:
    rules_dir, data_dir = dirs
    load_rules_cached(rules_dir, data_dir)
    (rules_dir / "routing.yaml").write_text(RULES.replace("dpupr", "dlh"), encoding="utf-8")
    rules = load_rules_cached(rules_dir, data_dir)
    assert rules.evaluate("jalan rusak").agencies == ["dlh"]
    # ... and the cache now holds the new rules.
    _plant(data_dir / CACHE_FILE, rules_dir, MARKER)
    assert load_rules_cached(rules_dir, data_dir).rules[0].name == "from-the-cache"


def test_a_new_file_is_loaded_again(dirs: tuple[Path, Path]) -> None:
    rules_dir, data_dir = dirs
    load_rules_cached(rules_dir, data_dir)
    (rules_dir / "zz-more.yaml").write_text(
        "rules:\n  - name: sampah\n    when: {any: [sampah]}\n    forward: dlh\n", encoding="utf-8"
    )
    rules = load_rules_cached(rules_dir, data_dir)
    assert [r.name for r in rules.rules] == ["jalan-rusak", "sampah"]


def test_a_broken_edit_raises_as_without_a_cache(dirs: tuple[Path, Path]) -> None:
    rules_dir, data_dir = dirs
    load_rules_cached(rules_dir, data_dir)
    (rules_dir / "routing.yaml").write_text(RULES.replace("dpupr", "dpuppr"), encoding="utf-8")
    with pytest.raises(RulesError) as err:
        load_rules_cached(rules_dir, data_dir)
    assert "routing.yaml:5" in str(err.value.problems)


@pytest.mark.parametrize("damage", [b"", b"x" * 10, b"\0" * 32 + b"not a pickle"])
def test_a_damaged_cache_is_only_a_slower_start(dirs: tuple[Path, Path], damage: bytes) -> None:
    rules_dir, data_dir = dirs
    load_rules_cached(rules_dir, data_dir)
    cache = data_dir / CACHE_FILE
    key = cache.read_bytes()[:32]
    cache.write_bytes(key + damage if damage.startswith(b"\0") else damage)
    rules = load_rules_cached(rules_dir, data_dir)
    assert [r.name for r in rules.rules] == ["jalan-rusak"]
    assert cache.read_bytes()[:32] == key  # rewritten whole
    assert len(cache.read_bytes()) > 100


def test_a_cache_that_cannot_be_written_costs_nothing_but_speed(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    rules_dir, _ = dirs
    missing = tmp_path / "no-such-dir"
    rules = load_rules_cached(rules_dir, missing)
    assert [r.name for r in rules.rules] == ["jalan-rusak"]
    assert not missing.exists()


def test_the_signature_is_todays_so_a_touch_does_not_reload_forever(
    dirs: tuple[Path, Path],
) -> None:
    """The cached RuleSet gets the files' current stat signature: after a touch (same bytes)
    the daemon's reload check sees no change again once it has reloaded."""
    from lapakd.rules import rules_signature

    rules_dir, data_dir = dirs
    load_rules_cached(rules_dir, data_dir)
    path = rules_dir / "routing.yaml"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    rules = load_rules_cached(rules_dir, data_dir)
    assert rules.signature == rules_signature(rules_dir)


def test_the_shipped_rules_decide_the_same_from_the_cache(tmp_path: Path) -> None:
    """Every shipped example, decided by freshly loaded rules and by the cached copy."""
    rules_dir = REPO / "rules"
    fresh = load_rules(rules_dir)
    load_rules_cached(rules_dir, tmp_path)
    cached = load_rules_cached(rules_dir, tmp_path)
    assert cached is not fresh
    assert len(fresh.examples) >= 60
    for ex in fresh.examples:
        a = fresh.evaluate(ex["text"], ex.get("channel"), ex.get("sender"))
        b = cached.evaluate(ex["text"], ex.get("channel"), ex.get("sender"))
        assert a == b
