"""Shared pytest fixtures.

Tests talk to REAL servers on loopback (nothing mocked).  Sections below:
add new fixtures to the section they belong to, or start a new section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from certs import make_self_signed_cert
from dovecot import Dovecot
from oauth2_provider import OAuth2Provider

from lapakd.embedded.smtp_sink import SmtpSink

# Fixtures that start a real server or a desk on real servers: a test using any of them (even
# through another fixture) is marked `slow`, so `pytest -m "not slow"` is the quick inner loop.
SERVER_FIXTURES = {"dovecot", "smtp_sink", "sink", "make_sink", "desk_env", "replica", "hook", "x",
                   "oauth2_provider", "oauth2_dovecot", "oauth2_desk"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)

# ---------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(certfile, keyfile): self-signed for localhost/127.0.0.1; certfile is also the CA."""
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


# ---------------------------------------------------------------------------
# IMAP: one real Dovecot for the whole session
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """Dovecot on 127.0.0.1: .port (plain, STARTTLS), .ssl_port (imaps), .cafile.

    Any user name logs in with .password; use ``dovecot.new_user()`` in every
    test for a fresh, empty mailbox.
    """
    server = Dovecot(tmp_path_factory.mktemp("dovecot"))
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------------------
# SMTP: one real SMTP sink for the session, reset per test via `sink`
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    """Plain SMTP sink shared by the session.  Prefer the `sink` fixture."""
    with SmtpSink() as server:
        yield server


@pytest.fixture
def sink(smtp_sink: SmtpSink) -> SmtpSink:
    """The session's SMTP sink with no messages, failures or AUTH requirement."""
    smtp_sink.reset()
    return smtp_sink


@pytest.fixture
def make_sink(tls_cert: tuple[str, str]) -> Iterator[Callable[..., SmtpSink]]:
    """Factory for extra sinks (e.g. ``make_sink(tls="ssl")``), stopped after the test.

    TLS sinks get the session's ``tls_cert`` unless certfile/keyfile are given.
    """
    started: list[SmtpSink] = []

    def factory(**kwargs) -> SmtpSink:
        if kwargs.get("tls"):
            kwargs.setdefault("certfile", tls_cert[0])
            kwargs.setdefault("keyfile", tls_cert[1])
        server = SmtpSink(**kwargs)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


# ---------------------------------------------------------------------------
# A lapakd desk on the real servers: own config, data_dir and fresh mailbox
# ---------------------------------------------------------------------------


@pytest.fixture
def desk_env(tmp_path, dovecot: Dovecot, sink: SmtpSink):
    from deskenv import DeskEnv

    env = DeskEnv(tmp_path, dovecot, sink, dovecot.new_user("desk"))
    env.write_config()
    return env


# ---------------------------------------------------------------------------
# OAuth2 (XOAUTH2): a token server, and a Dovecot checking bearer tokens with it (its oauth2
# passdb); tests/test_oauth2.py has the desk that logs in with them
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def oauth2_server() -> Iterator[OAuth2Provider]:
    with OAuth2Provider() as provider:
        yield provider


@pytest.fixture
def oauth2_provider(oauth2_server: OAuth2Provider) -> OAuth2Provider:
    """The session's token server, without rotation and with its request log emptied."""
    oauth2_server.rotate = False
    with oauth2_server.lock:
        oauth2_server.posts.clear()
    return oauth2_server


@pytest.fixture(scope="session")
def oauth2_dovecot(
    tmp_path_factory: pytest.TempPathFactory, oauth2_server: OAuth2Provider
) -> Iterator[Dovecot]:
    server = Dovecot(tmp_path_factory.mktemp("dovecot-oauth2"),
                     oauth2_introspection_url=oauth2_server.introspection_url)
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------------------
# Meta: the Graph API replica and lapakd's /webhook for WhatsApp
# (test modules that need a differently seeded replica define their own `replica`)
# ---------------------------------------------------------------------------


@pytest.fixture
def replica():
    from lapakd.embedded.replica.graph import GraphReplica

    with GraphReplica() as rep:
        yield rep


@pytest.fixture
def x():
    """The X API v2 replica with limits no test reaches (tests of the limits make their own)."""
    from lapakd.embedded.replica.x import NO_LIMITS, XReplica

    with XReplica(limits=NO_LIMITS) as replica:
        yield replica


@pytest.fixture
def hook(desk_env, replica):
    """lapakd's real /webhook (waitress) for a desk with WhatsApp on the replica."""
    from metaenv import WA, configure, start_webhook

    configure(desk_env, replica, whatsapp=WA)
    server = start_webhook(desk_env)
    yield server
    server.stop()
