"""smtp.send_many: several SMTP connections driven by one thread, against the real aiosmtpd
sink — every mail arrives once and byte for byte, and a failure on one connection is that
mail's outcome only (the connection is dropped; the next mail on it reconnects)."""

from __future__ import annotations

import socket

import pytest
from lapakd.adapters.base import PermanentError, TransientError

from lapakd.config import Config, load_config
from lapakd.delivery.smtp import Outcome, SmtpSession, send_many
from lapakd.embedded.smtp_sink import ReceivedMail

DESK = "lapakaduanbms@banyumas.example"


def _mail(n: int) -> bytes:
    return (
        f"From: {DESK}\r\nTo: dinas{n}@banyumas.example\r\nSubject: aduan {n}\r\n"
        f"Message-ID: <lockstep.{n}@lapakd.test>\r\n\r\n"
        f"Isi aduan nomor {n}.\r\n.baris yang diawali titik\r\n..dua titik\r\n"
    ).encode()


def _job(n: int, *recipients: str) -> tuple[int, list[str]]:
    return n, list(recipients) or [f"dinas{n}@banyumas.example"]


def _send(sessions: list[SmtpSession], jobs: list[tuple[int, list[str]]]) -> dict[int, Outcome]:
    """Every job's outcome, by mail number (outcomes come in the order transactions end)."""
    made: list[int] = []

    def message(job: tuple[int, list[str]], offers_8bit: bool) -> tuple[bytes, list[str], bool]:
        assert offers_8bit  # aiosmtpd offers 8BITMIME
        made.append(job[0])
        return _mail(job[0]), job[1], False

    outcomes = {job[0]: outcome for job, outcome in send_many(sessions, jobs, message)}
    assert len(made) == len(set(made))  # each made once at most, when a connection was open
    assert {n for n, o in outcomes.items() if not isinstance(o, Exception)} <= set(made)
    return outcomes


@pytest.fixture
def cfg(desk_env) -> Config:
    return load_config(str(desk_env.write_config()))


@pytest.fixture
def sessions(cfg: Config):
    made: list[SmtpSession] = []

    def make(count: int) -> list[SmtpSession]:
        made.extend(SmtpSession(cfg) for _ in range(count))
        return made[-count:]

    yield make
    for s in made:
        s.close()


def _by_message_id(sink) -> dict[str, ReceivedMail]:
    return {m.message["Message-ID"]: m for m in sink.messages}


def test_every_mail_arrives_once_byte_for_byte(sessions, sink) -> None:
    pool = sessions(3)
    for round_ in range(2):  # connections reused across calls
        outcomes = _send(pool, [_job(n) for n in range(10 * round_, 10 * round_ + 10)])
        assert outcomes == {n: {"refused": {}} for n in range(10 * round_, 10 * round_ + 10)}
    assert len(sink.wait_for(20)) == 20
    got = _by_message_id(sink)
    assert set(got) == {f"<lockstep.{n}@lapakd.test>" for n in range(20)}
    for n in range(20):
        mail = got[f"<lockstep.{n}@lapakd.test>"]
        assert mail.mail_from == DESK
        assert mail.rcpt_tos == [f"dinas{n}@banyumas.example"]
        # dot-stuffing undone by the server: the lines starting with dots are intact
        assert mail.data.replace(b"\r\n", b"\n") == _mail(n).replace(b"\r\n", b"\n")
    assert all(s._client is not None for s in pool)  # kept open for the next batch


def test_failures_stay_with_their_own_mail(sessions, sink) -> None:
    sink.fail_recipient("ditolak@banyumas.example", 550, "no such user")
    sink.fail_recipient("penuh@banyumas.example", 452, "mailbox full")
    pool = sessions(4)
    outcomes = _send(pool, [
        _job(0),
        _job(1, "ditolak@banyumas.example"),  # every recipient refused: permanent
        _job(2, "penuh@banyumas.example"),  # every recipient deferred (4xx): transient
        _job(3, "dinas3@banyumas.example", "ditolak@banyumas.example"),  # one of two
        _job(4),
    ])
    assert outcomes[0] == outcomes[4] == {"refused": {}}
    assert isinstance(outcomes[1], PermanentError) and "550 no such user" in str(outcomes[1])
    assert isinstance(outcomes[2], TransientError) and "452 mailbox full" in str(outcomes[2])
    assert outcomes[3] == {"refused": {"ditolak@banyumas.example": "550 no such user"}}
    sink.wait_for(3)
    got = _by_message_id(sink)
    assert set(got) == {f"<lockstep.{n}@lapakd.test>" for n in (0, 3, 4)}
    assert got["<lockstep.3@lapakd.test>"].rcpt_tos == ["dinas3@banyumas.example"]
    # ... and a connection dropped after a failure reconnects for its next mail
    assert _send(pool, [_job(n) for n in range(5, 13)]) == {
        n: {"refused": {}} for n in range(5, 13)
    }
    assert len(sink.wait_for(11)) == 11


def test_a_data_failure_hits_exactly_one_mail(sessions, sink) -> None:
    sink.fail_next(451, "try again later")  # the first DATA the server finishes
    outcomes = _send(sessions(3), [_job(n) for n in range(3)])
    failed = [o for o in outcomes.values() if isinstance(o, Exception)]
    assert len(failed) == 1 and isinstance(failed[0], TransientError)
    assert "451 try again later" in str(failed[0])
    assert sum(o == {"refused": {}} for o in outcomes.values()) == 2
    assert len(sink.wait_for(2)) == 2


def test_a_message_that_cannot_be_made_fails_alone(sessions, sink) -> None:
    def message(n: int, _offers_8bit: bool) -> tuple[bytes, list[str], bool]:
        if n == 1:
            raise ValueError("template broke")
        return _mail(n), [f"dinas{n}@banyumas.example"], False

    outcomes = dict(send_many(sessions(2), [0, 1, 2], message))
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[0] == outcomes[2] == {"refused": {}}
    assert len(sink.wait_for(2)) == 2


def test_ending_the_jobs_stops_new_sends_and_finishes_those_begun(sessions, sink) -> None:
    """The caller stops (SIGTERM) by ending its jobs iterator: nothing after it is sent,
    nothing begun is left half-way."""
    taken: list[int] = []

    def jobs():
        for n in range(10):
            if n == 4:
                return
            taken.append(n)
            yield n

    outcomes = dict(
        send_many(sessions(3), jobs(), lambda n, _: (_mail(n), ["x@banyumas.example"], False))
    )
    assert taken == [0, 1, 2, 3] and set(outcomes) == {0, 1, 2, 3}
    assert len(sink.wait_for(4)) == 4


def test_a_server_that_is_down_fails_only_the_mails_sent_to_it(
    cfg: Config, sink, desk_env
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead_cfg = load_config(str(desk_env.write_config(smtp={"port": dead_port})))
    live, dead = SmtpSession(cfg), SmtpSession(dead_cfg)
    try:
        outcomes = _send([dead, live], [_job(0), _job(1)])  # the first session is taken first
    finally:
        live.close()
    assert isinstance(outcomes[0], TransientError) and "connection refused" in str(outcomes[0])
    assert outcomes[1] == {"refused": {}}
    assert [m.message["Message-ID"] for m in sink.wait_for(1)] == ["<lockstep.1@lapakd.test>"]


def test_a_session_goes_on_after_a_permanent_failure(sessions, sink) -> None:
    sink.fail_next(554, "rejected as spam")
    [session] = sessions(1)

    def message(n: int, _offers_8bit: bool) -> tuple[bytes, list[str], bool]:
        return _mail(n), [f"dinas{n}@banyumas.example"], False

    [(_, refused)] = send_many([session], [0], message)
    assert isinstance(refused, PermanentError) and "554 rejected as spam" in str(refused)
    assert list(send_many([session], [1], message)) == [(1, {"refused": {}})]
    assert [m.message["Message-ID"] for m in sink.wait_for(1)] == ["<lockstep.1@lapakd.test>"]


TEXT_8BIT = "Jalan rusak — mohon diperbaiki · terima kasih 🙏\r\n".encode()


def _mail_8bit(n: int) -> bytes:
    return (
        f"From: {DESK}\r\nTo: dinas{n}@banyumas.example\r\nSubject: aduan {n}\r\n"
        f"Message-ID: <lockstep.{n}@lapakd.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
    ).encode() + TEXT_8BIT


def test_8bit_bodies_only_to_a_server_that_offers_8bitmime(sessions, sink) -> None:
    def message(n: int, offers_8bit: bool) -> tuple[bytes, list[str], bool]:
        if offers_8bit:
            return _mail_8bit(n), [f"dinas{n}@banyumas.example"], True
        return _mail(n), [f"dinas{n}@banyumas.example"], False

    assert dict(send_many(sessions(1), [0], message)) == {0: {"refused": {}}}
    sink.offer_8bitmime = False  # from the next connection on
    assert dict(send_many(sessions(1), [1], message)) == {1: {"refused": {}}}
    got = _by_message_id(sink)
    eight, seven = got["<lockstep.0@lapakd.test>"], got["<lockstep.1@lapakd.test>"]
    assert eight.mail_options == [f"SIZE={len(_mail_8bit(0))}", "BODY=8BITMIME"]
    assert eight.data.endswith(TEXT_8BIT)
    assert eight.message.get_content().rstrip() == TEXT_8BIT.decode().rstrip()
    assert seven.mail_options == [f"SIZE={len(_mail(1))}"]
    assert seven.data.isascii()


def test_an_8bit_body_is_not_sent_to_a_server_without_8bitmime(sessions, sink) -> None:
    """A message made 8bit whatever the server offers is refused before MAIL FROM."""
    sink.offer_8bitmime = False
    outcomes = dict(send_many(
        sessions(1), [0], lambda n, _offers: (_mail_8bit(n), ["dinas0@banyumas.example"], True)
    ))
    assert isinstance(outcomes[0], TransientError)
    assert "does not offer 8BITMIME" in str(outcomes[0])
    assert sink.messages == []
