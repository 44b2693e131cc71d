"""The routing model (lapakd/learn): labels from the desk's decisions, training, the numpy
predictor against scikit-learn, suggestions in the triage mail and `show`, `Teruskan: 1`,
auto-forwarding at the threshold, disagreements in `rules audit`, the daemon's retraining."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from lapakd.adapters.base import Content

from lapakd.app import Desk
from lapakd.cli.admin import add_complaint
from lapakd.config import dump_toml, load_config
from lapakd.errors import ConfigError, LapakdError
from lapakd.learn import job
from lapakd.learn.labels import desk_labels, example_labels
from lapakd.learn.predict import Model
from lapakd.learn.slot import model_path
from lapakd.lifecycle import replies
from lapakd.lifecycle import status as lifecycle
from lapakd.rules import load_rules
from lapakd.store import now_iso

TESTS = Path(__file__).resolve().parent
MODEL_RULES = TESTS / "data" / "model_rules"
TEST_RULES = TESTS / "data" / "rules"
ADMIN = "admin@lapak.test"
# No rule matches these; the model trained on MODEL_RULES' examples is sure of them (> 0.9).
ROAD = "dalan bolong gedhe neng Karanglewas, aspale rusak kabeh"
# The `puskesmas` rule sends this to dinkes; it is about rubbish (dlh), and the model says so.
RUBBISH_AT_CLINIC = "sampah menumpuk di depan puskesmas Kembaran sudah seminggu, bau busuk"
UNSURE = "kok ora ana sing ngurusi, piye kiye"


def write_config(root: Path, rules: Path = MODEL_RULES, **routing: object) -> Path:
    path = root / "lapakd.toml"
    path.write_text(dump_toml({
        "desk": {"email": "aduan@lapak.test", "admin_email": ADMIN},
        "paths": {"data_dir": "var", "rules_dir": str(rules), "public_dir": "var/public"},
        "routing": {"retrain_hours": 0, **routing},
    }), encoding="utf-8")
    return path


def lapakd(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "lapakd.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=300, cwd=config.parent)
    if check and proc.returncode != 0:
        raise AssertionError(f"lapakd {args} exited {proc.returncode}: {proc.stderr}")
    return proc


def train_here(data_dir: Path, rules_dir: Path = MODEL_RULES) -> Model:
    """Train in this process on the examples and write the model file (as the subprocess
    does), for the tests that do not test the subprocess."""
    from lapakd.learn import train

    labels = example_labels(load_rules(rules_dir))
    vectorizer, clf = train.fit([lab.text for lab in labels], [lab.label for lab in labels])
    train.export(vectorizer, clf, {"trained_at": "2026-12-01T00:00:00Z"}, model_path(data_dir))
    return Model(model_path(data_dir))


# -- training and the predictor -----------------------------------------------------------


def test_numpy_predictor_agrees_with_sklearn_on_held_out_texts(tmp_path: Path) -> None:
    from lapakd.learn import train

    labels = example_labels(load_rules(MODEL_RULES))
    held_out = labels[::7]
    kept = [lab for lab in labels if lab not in held_out]
    vectorizer, clf = train.fit([lab.text for lab in kept], [lab.label for lab in kept])
    size = train.export(vectorizer, clf, {"trained_at": "t"}, tmp_path / "m.npz")
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == 0o600
    assert size == (tmp_path / "m.npz").stat().st_size < 1_000_000
    assert not list(tmp_path.glob(".*partial"))  # written aside, renamed over
    model = Model(tmp_path / "m.npz")
    texts = [lab.text for lab in held_out] + [ROAD, UNSURE, "", "!!!", "Ünïcödé ꦧꦚꦸꦩꦱ᭄"]
    expected = clf.predict_proba(vectorizer.transform(texts))
    ours = np.array([model.probabilities(t) for t in texts])
    assert model.classes == list(clf.classes_)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert [model.ranked(t)[0][0] for t in texts] == list(clf.classes_[expected.argmax(axis=1)])


def test_binary_model_agrees_too(tmp_path: Path) -> None:
    from lapakd.learn import train

    labels = example_labels(load_rules(MODEL_RULES))
    classes = ["dpupr" if lab.label == "dpupr" else "dlh" for lab in labels]
    vectorizer, clf = train.fit([lab.text for lab in labels], classes)
    assert clf.coef_.shape[0] == 1  # scikit-learn's binary form: one column
    train.export(vectorizer, clf, {}, tmp_path / "m.npz")
    model = Model(tmp_path / "m.npz")
    texts = [ROAD, RUBBISH_AT_CLINIC, UNSURE]
    np.testing.assert_allclose([model.probabilities(t) for t in texts],
                               clf.predict_proba(vectorizer.transform(texts)), atol=1e-5)


def test_too_few_labels_train_nothing(tmp_path: Path) -> None:
    from lapakd.learn import train

    labels = example_labels(load_rules(TEST_RULES))
    with pytest.raises(train.NotEnoughLabels):
        train.fit([lab.text for lab in labels], [lab.label for lab in labels])


# -- labels from the desk's decisions -------------------------------------------------------


def _agency_answers(desk: Desk, c, agency: str, text: str) -> None:
    """The agency's mail as the reply path stores and applies it."""
    store = desk.store
    with store.transaction() as conn:
        message_id = conn.execute(
            "INSERT INTO messages (channel, external_id, raw, raw_format, meta, received_at,"
            " stored_at, state, kind) VALUES ('email', ?, ?, 'email', '{}', ?, ?, 'pending',"
            " 'complaint') RETURNING id",
            (f"reply-{c['id']}-{agency}", text.encode(), now_iso(), now_iso()),
        ).fetchone()[0]
        row = store.one("SELECT * FROM messages WHERE id = ?", (message_id,))
        sender = desk.rules.agencies[agency].email
        replies.agency_reply(desk, row, Content(kind="complaint", text=text, sender=sender),
                             lifecycle.reload(desk, c), agency, "thread")


def test_every_admin_decision_is_a_label(tmp_path: Path) -> None:
    desk = Desk.open(str(write_config(tmp_path, auto_forward_confidence=1.0)))
    try:
        def add(text: str) -> str:
            ticket, _, _ = add_complaint(desk, text=text, channel="walkin", contact=None,
                                         name=None, photos=[], actor="petugas")
            return ticket

        assigned, rejected, duplicate, answered, protested, untouched = (
            add(ROAD), add("Sertifikat tanah saya di BPN belum jadi"), add("dalan rusak maning"),
            add("Obat di puskesmas kosong terus"), add("Stok obat puskesmas habis"),
            add("Antrean di puskesmas panjang"))
        store = desk.store
        c = store.complaint
        with store.transaction():
            replies.assign(desk, c(assigned), ["dpupr"], actor=ADMIN)
            replies.reject(desk, c(rejected), "di luar kewenangan", actor=ADMIN)
            lifecycle.merge(desk, c(duplicate), c(assigned), actor="admin")
        _agency_answers(desk, c(answered), "dinkes", "Sudah kami kirim obatnya.")
        _agency_answers(desk, c(protested), "dinkes", "Status: ditolak\nBukan kewenangan kami.")
        got = {(lab.ref, lab.label, lab.source) for lab in desk_labels(store)}
    finally:
        desk.close()
    assert got == {
        (assigned, "dpupr", "assign"),
        (rejected, "triage", "reject"),
        (duplicate, "dpupr", "merge"),
        (answered, "dinkes", "answer"),
    }
    assert untouched not in {ref for ref, _, _ in got}  # the rules' decision alone: no label


# -- routing with the model -----------------------------------------------------------------


def test_auto_forward_at_or_above_the_threshold_and_not_below(tmp_path: Path) -> None:
    p = train_here(tmp_path / "var").ranked(ROAD)[0]
    assert p[0] == "dpupr" and 0.5 < p[1] < 0.995
    outcomes = {}
    for name, threshold in (("above", p[1] - 0.005), ("below", p[1] + 0.005), ("off", 1.0)):
        desk = Desk.open(str(write_config(tmp_path, auto_forward_confidence=threshold)))
        try:
            ticket, status, agencies = add_complaint(
                desk, text=ROAD, channel="walkin", contact=None, name=None, photos=[],
                actor="petugas")
            c = desk.store.complaint(ticket)
            routed = json.loads(desk.store.one(
                "SELECT data FROM events WHERE type = 'routed' AND complaint_id = ?",
                (c["id"],))["data"])
            outcomes[name] = (status, agencies, c["rule"], routed.get("model"))
        finally:
            desk.close()
    status, agencies, rule, model = outcomes["above"]
    assert (status, agencies, rule) == ("forwarded", ["dpupr"], "model")
    assert model["probability"] == pytest.approx(p[1], abs=1e-4)
    for name in ("below", "off"):
        status, agencies, rule, model = outcomes[name]
        assert (status, agencies, rule) == ("triage", [], None)
        assert model["suggestions"][0][0] == "dpupr" and "probability" not in model


@pytest.mark.slow
def test_disagreements_are_recorded_and_audited(tmp_path: Path) -> None:
    train_here(tmp_path / "var")
    config = write_config(tmp_path)
    desk = Desk.open(str(config))
    try:
        ticket, status, agencies = add_complaint(
            desk, text=RUBBISH_AT_CLINIC, channel="walkin", contact=None, name=None, photos=[],
            actor="petugas")
        agreed, _, _ = add_complaint(desk, text="Dokter puskesmas jarang datang, pasien telantar",
                                     channel="walkin", contact=None, name=None, photos=[],
                                     actor="petugas")
    finally:
        desk.close()
    assert (status, agencies) == ("forwarded", ["dinkes"])  # the rule still decides
    cases = json.loads(lapakd(config, "rules", "audit", "--json").stdout)
    assert [(c["ticket"], c["rule"], c["agencies"], c["model_agency"]) for c in cases] == [
        (ticket, "puskesmas", ["dinkes"], "dlh")]
    assert cases[0]["probability"] >= 0.8
    text = lapakd(config, "rules", "audit").stdout
    assert ticket in text and "model: dlh" in text and agreed not in text
    shown = lapakd(config, "show", ticket).stdout
    assert "the model says dlh" in shown


@pytest.mark.slow
def test_rules_test_trains_on_demand_and_gives_the_full_decision(tmp_path: Path) -> None:
    config = write_config(tmp_path, auto_forward_confidence=0.6)
    assert not model_path(tmp_path / "var").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "lapakd.cli", "rules", "test", "--json", "--file", "-",
         "--config", str(config)],
        input=f"{ROAD}\n{RUBBISH_AT_CLINIC}\n{UNSURE}\n", capture_output=True, text=True,
        timeout=300, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    path = model_path(tmp_path / "var")
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600  # cached
    road, clinic, unsure = rows
    for row in rows:
        assert {"action", "agencies", "category", "rule", "matched", "score"} <= row.keys()
    assert (road["action"], road["agencies"], road["rule"]) == ("forward", ["dpupr"], "model")
    assert road["score"] > 0.6 and road["model"]["suggestions"][0][0] == "dpupr"
    assert (clinic["rule"], clinic["agencies"]) == ("puskesmas", ["dinkes"])
    assert clinic["model"]["disagrees"]["agency"] == "dlh"
    assert (unsure["action"], unsure["rule"]) == ("triage", None)
    assert len(unsure["model"]["suggestions"]) == 3
    # cached: the next run reads the file, trains nothing
    mtime = path.stat().st_mtime_ns
    no_model = lapakd(config, "rules", "test", "--json", "--no-model", ROAD).stdout
    assert json.loads(no_model)["action"] == "triage"
    lapakd(config, "rules", "test", ROAD)
    assert path.stat().st_mtime_ns == mtime


# -- the verbs and the daemon's job ---------------------------------------------------------


@pytest.mark.slow
def test_model_train_and_show(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    missing = lapakd(config, "model", "show", check=False)
    assert missing.returncode == 2 and "no model yet" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    summary = json.loads(lapakd(config, "model", "train", "--json").stdout)
    assert summary["labels"] == 68 and summary["classes"] == 6 and summary["agencies"] == 4
    shown = json.loads(lapakd(config, "model", "show", "--json").stdout)
    assert shown["trained_at"] == summary["trained_at"]
    assert shown["size_bytes"] == Path(summary["path"]).stat().st_size
    held = shown["held_out"]
    assert held["texts"] > 5 and 0 <= held["accuracy"] <= 1
    assert [t["threshold"] for t in held["thresholds"]] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    text = lapakd(config, "model", "show").stdout
    for part in ("trained:", "MB", "labels: 68", "accuracy", "precision", "0.95",
                 "rules on the same texts"):
        assert part in text, part
    (tmp_path / "few").mkdir()
    few = write_config(tmp_path / "few", rules=TEST_RULES)
    failed = lapakd(few, "model", "train", check=False)
    assert failed.returncode == 2 and "at least 50" in failed.stderr


@pytest.mark.slow
def test_daemon_job_retrains_daily_without_waiting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(job, "TRAINER", job.Trainer())  # this test's own training process
    config = write_config(tmp_path, retrain_hours=24)
    desk = Desk.open(str(config))
    path = model_path(tmp_path / "var")
    try:
        assert job.model_job(desk) is None  # none yet: a training starts; the job returns
        assert job.TRAINER.running and not path.exists()
        assert job.finish_training(desk)["labels"] == 68
        first = path.stat().st_mtime_ns
        assert job.model_job(desk) is None and not job.TRAINER.running  # fresh: nothing to do
        day_ago = time.time() - 25 * 3600
        os.utime(path, (day_ago, day_ago))
        assert job.model_job(desk) is None and job.TRAINER.running
        deadline = time.monotonic() + 300
        summary = None
        while summary is None and time.monotonic() < deadline:  # later runs of the job
            time.sleep(0.5)
            summary = job.model_job(desk)
        assert summary is not None and not job.TRAINER.running
        assert path.stat().st_mtime_ns > first
        assert desk.model is not None and desk.model.classes[:1] == ["dinkes"]
    finally:
        desk.close()
    # 0: never by the daemon; too few labels: no model, no process (and no retry for an hour)
    cases = ((tmp_path / "off", MODEL_RULES, 0), (tmp_path / "few", TEST_RULES, 24))
    for root, rules, hours in cases:
        root.mkdir()
        desk = Desk.open(str(write_config(root, rules=rules, retrain_hours=hours)))
        try:
            assert job.model_job(desk) is None and not job.TRAINER.running
        finally:
            desk.close()
        assert not model_path(root / "var").exists()
    assert job.TRAINER.resting()


@pytest.mark.slow
def test_stopping_the_daemon_ends_its_training(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(job, "TRAINER", job.Trainer())
    desk = Desk.open(str(write_config(tmp_path, retrain_hours=24)))
    try:
        job.model_job(desk)
        proc = job.TRAINER.proc
        assert proc is not None and proc.poll() is None
        job.TRAINER.stop()
        assert proc.returncode is not None and not job.TRAINER.running
    finally:
        desk.close()
    assert not list((tmp_path / "var").glob("*.partial"))


@pytest.mark.slow
def test_triage_mail_suggests_three_and_teruskan_1_forwards(desk_env) -> None:
    from deskenv import ADMIN_EMAIL, make_mail
    from test_lifecycle_e2e import reply_to

    desk_env.write_config(paths={"rules_dir": str(MODEL_RULES)},
                          routing={"auto_forward_confidence": 1.0, "retrain_hours": 24})
    desk_env.run_once()  # no mail yet: the daemon's model job trains the first model
    assert model_path(desk_env.data_dir).exists()
    desk_env.append(make_mail("Dalan rusak", ROAD, sender="Warsono <warsono@example.net>"))
    desk_env.append(make_mail("Piye", UNSURE, sender="Darsih <darsih@example.net>"))
    desk_env.run_once()
    triage = {m.message["X-Lapakd-Ticket"]: m.message for m in desk_env.sink.wait_for(2)}
    assert all(m["Subject"].startswith("[") for m in triage.values())
    road_ticket = next(t for t, m in triage.items() if "Dalan" in m["Subject"])
    body = triage[road_ticket].get_body(("plain",)).get_content()
    lines = [line.strip() for line in body.splitlines()]
    suggested = [line for line in lines if line[:3] in ("1. ", "2. ", "3. ")]
    assert len(suggested) == 3 and suggested[0].startswith("1. dpupr — Dinas Pekerjaan Umum")
    assert suggested[0].endswith("%)") and "Teruskan: 1" in body
    shown = desk_env.cli_json("show", road_ticket)
    assert [s["agency"] for s in shown["suggestions"]][:1] == ["dpupr"]
    assert len(shown["suggestions"]) == 3
    assert "model suggests: 1. dpupr" in desk_env.cli("show", road_ticket).stdout
    desk_env.sink.clear()

    desk_env.append(reply_to(triage[road_ticket], "Teruskan: 1\n\nadmin", sender=ADMIN_EMAIL))
    desk_env.run_once()
    shown = desk_env.cli_json("show", road_ticket)
    assert (shown["status"], shown["agencies"]) == ("forwarded", ["dpupr"])
    (fwd,) = desk_env.sink.wait_for(1)
    assert fwd.rcpt_tos == ["dpupr@banyumas.example"]
    # the admin's choice is a label for the next training
    desk = Desk.open(str(desk_env.config))
    try:
        assert [(lab.ref, lab.label) for lab in desk_labels(desk.store)] == [
            (road_ticket, "dpupr")]
    finally:
        desk.close()


# -- the config key -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.5", "0.2", "true", '"0.9"'])
def test_auto_forward_confidence_is_checked(tmp_path: Path, value: str) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace(
        "[routing]", f"[routing]\nauto_forward_confidence = {value}"))
    with pytest.raises(ConfigError, match=r"routing\.auto_forward_confidence"):
        load_config(path)
    assert load_config(write_config(tmp_path, auto_forward_confidence=1)).routing.retrain_hours == 0


def test_unknown_suggestion_number_is_a_clear_error(tmp_path: Path) -> None:
    train_here(tmp_path / "var")
    desk = Desk.open(str(write_config(tmp_path, auto_forward_confidence=1.0)))
    try:
        ticket, status, _ = add_complaint(desk, text=UNSURE, channel="walkin", contact=None,
                                          name=None, photos=[], actor="petugas")
        assert status == "triage"
        with desk.store.transaction(), pytest.raises(LapakdError, match="no suggestion 4"):
            replies.assign(desk, desk.store.complaint(ticket), ["4"], actor=ADMIN)
        with desk.store.transaction():
            keys = replies.assign(desk, desk.store.complaint(ticket), ["2"], actor=ADMIN)
        second = desk.model.ranked(UNSURE)
        assert keys == [[a for a, _ in second if a in desk.rules.agencies][1]]
    finally:
        desk.close()
