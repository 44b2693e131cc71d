"""smtp.send_many: several SMTP connections driven in lockstep by one thread, against the real
aiosmtpd sink — every mail arrives once and byte for byte, and a failure on one connection
is that mail's outcome only (the connection is dropped; the next mail reconnects)."""

from __future__ import annotations

import socket

import pytest
from lapakd.adapters.base import PermanentError, TransientError

from lapakd.config import Config, load_config
from lapakd.smtp import SmtpSession, send_many
from lapakd.testing.smtp_sink import ReceivedMail

DESK = "lapakaduanbms@banyumas.example"


def _mail(n: int, extra: str = "") -> bytes:
    return (
        f"From: {DESK}\r\nTo: dinas{n}@banyumas.example\r\nSubject: aduan {n}\r\n"
        f"Message-ID: <lockstep.{n}@lapakd.test>\r\n\r\n"
        f"Isi aduan nomor {n}.\r\n.baris yang diawali titik\r\n..dua titik\r\n{extra}"
    ).encode()


@pytest.fixture
def cfg(desk_env) -> Config:
    return load_config(str(desk_env.write_config()))


def _sessions(cfg: Config, count: int) -> list[SmtpSession]:
    return [SmtpSession(cfg) for _ in range(count)]


def _by_message_id(sink) -> dict[str, ReceivedMail]:
    return {m.message["Message-ID"]: m for m in sink.messages}


def test_every_mail_arrives_once_byte_for_byte(cfg: Config, sink) -> None:
    sessions = _sessions(cfg, 3)
    jobs = [(sessions[i % 3], _mail(i), [f"dinas{i}@banyumas.example"]) for i in range(3)]
    try:
        for round_ in range(4):  # connections reused across calls
            outcomes = send_many(jobs)
            assert outcomes == [{"refused": {}}] * 3
            assert len(sink.wait_for(3 * (round_ + 1))) == 3 * (round_ + 1)
    finally:
        for s in sessions:
            s.close()
    assert len(sink.messages) == 12
    for i in range(3):
        mid = f"<lockstep.{i}@lapakd.test>"
        copies = [m for m in sink.messages if m.message["Message-ID"] == mid]
        assert len(copies) == 4
        for mail in copies:
            assert mail.mail_from == DESK
            assert mail.rcpt_tos == [f"dinas{i}@banyumas.example"]
            # dot-stuffing undone by the server: the lines starting with dots are intact
            assert mail.data.replace(b"\r\n", b"\n") == _mail(i).replace(b"\r\n", b"\n")


def test_failures_stay_with_their_own_mail(cfg: Config, sink) -> None:
    sink.fail_recipient("ditolak@banyumas.example", 550, "no such user")
    sink.fail_recipient("penuh@banyumas.example", 452, "mailbox full")
    sessions = _sessions(cfg, 4)
    jobs = [
        (sessions[0], _mail(0), ["dinas0@banyumas.example"]),
        (sessions[1], _mail(1), ["ditolak@banyumas.example"]),  # every recipient: permanent
        (sessions[2], _mail(2), ["penuh@banyumas.example"]),  # every recipient, 4xx: transient
        (sessions[3], _mail(3), ["dinas3@banyumas.example", "ditolak@banyumas.example"]),
    ]
    try:
        ok, refused, deferred, partial = send_many(jobs)
        assert ok == {"refused": {}}
        assert isinstance(refused, PermanentError) and "550 no such user" in str(refused)
        assert isinstance(deferred, TransientError) and "452 mailbox full" in str(deferred)
        assert partial == {"refused": {"ditolak@banyumas.example": "550 no such user"}}
        sink.wait_for(2)
        got = _by_message_id(sink)
        assert set(got) == {"<lockstep.0@lapakd.test>", "<lockstep.3@lapakd.test>"}
        assert got["<lockstep.3@lapakd.test>"].rcpt_tos == ["dinas3@banyumas.example"]
        # the failed connections were dropped, the others kept
        assert [s._client is None for s in sessions] == [False, True, True, False]
        # ... and the next mail on a dropped one reconnects
        assert send_many([(sessions[1], _mail(5), ["dinas5@banyumas.example"])]) == [
            {"refused": {}}
        ]
        sink.wait_for(3)
    finally:
        for s in sessions:
            s.close()


def test_a_data_failure_hits_exactly_one_mail(cfg: Config, sink) -> None:
    sink.fail_next(451, "try again later")  # the first DATA the server finishes
    sessions = _sessions(cfg, 3)
    try:
        outcomes = send_many(
            [(sessions[i], _mail(i), [f"dinas{i}@banyumas.example"]) for i in range(3)]
        )
    finally:
        for s in sessions:
            s.close()
    failed = [o for o in outcomes if isinstance(o, Exception)]
    assert len(failed) == 1 and isinstance(failed[0], TransientError)
    assert "451 try again later" in str(failed[0])
    assert sum(o == {"refused": {}} for o in outcomes) == 2
    assert len(sink.wait_for(2)) == 2


def test_a_server_that_is_down_fails_only_the_mails_sent_to_it(
    cfg: Config, sink, desk_env
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead_cfg = load_config(str(desk_env.write_config(smtp={"port": dead_port})))
    live, dead = SmtpSession(cfg), SmtpSession(dead_cfg)
    try:
        outcomes = send_many([
            (dead, _mail(0), ["dinas0@banyumas.example"]),
            (live, _mail(1), ["dinas1@banyumas.example"]),
        ])
    finally:
        live.close()
    assert isinstance(outcomes[0], TransientError)
    assert "connection refused" in str(outcomes[0])
    assert outcomes[1] == {"refused": {}}
    assert [m.message["Message-ID"] for m in sink.wait_for(1)] == ["<lockstep.1@lapakd.test>"]


def test_session_send_raises_the_outcome(cfg: Config, sink) -> None:
    sink.fail_next(554, "rejected as spam")
    session = SmtpSession(cfg)
    try:
        with pytest.raises(PermanentError, match="554 rejected as spam"):
            session.send(_mail(0), ["dinas0@banyumas.example"])
        assert session.send(_mail(1), ["dinas1@banyumas.example"]) == {"refused": {}}
    finally:
        session.close()
    assert [m.message["Message-ID"] for m in sink.wait_for(1)] == ["<lockstep.1@lapakd.test>"]
