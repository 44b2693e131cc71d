"""A real SMTP server on loopback that keeps what it receives.

Used by the tests (real SMTP over TCP, nothing mocked) and by ``lapakd demo``::

    with SmtpSink(maildir=Path("demo/outbox")) as sink:
        smtplib.SMTP(sink.host, sink.port).sendmail(...)
        [mail] = sink.wait_for(1)
        mail.message["Subject"]

Modes: plain (default), ``tls="starttls"`` (STARTTLS offered on the plain port)
and ``tls="ssl"`` (implicit TLS from the first byte).  Failures can be injected
with :meth:`SmtpSink.fail_next` / :meth:`SmtpSink.fail_recipient` /
:meth:`SmtpSink.fail_always`, and AUTH
can be required with :meth:`SmtpSink.require_auth` (PLAIN/LOGIN) or
:meth:`SmtpSink.require_xoauth2` (AUTH XOAUTH2 with a bearer token, as Gmail and
Microsoft 365 take it).
"""

from __future__ import annotations

import collections
import contextlib
import email
import email.policy
import itertools
import json
import logging
import os
import socket
import ssl
import threading
import time
import uuid
import warnings
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

__all__ = ["ReceivedMail", "SmtpSink"]

Stage = Literal["MAIL", "RCPT", "DATA"]
_STAGES = ("MAIL", "RCPT", "DATA")


class _QuietAiosmtpdLog(logging.Filter):
    """Drop aiosmtpd's warnings about the test-only settings we chose on purpose."""

    _NOISE = ("auth_required == True but auth_require_tls == False", "login_data is deprecated")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(noise in msg for noise in self._NOISE)


logging.getLogger("mail.log").addFilter(_QuietAiosmtpdLog())


@dataclass
class ReceivedMail:
    """One message accepted by the sink (after a successful DATA)."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    auth_user: str | None = None  # login name if the client authenticated
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM parameters (BODY=...)
    tls: bool = False  # True if the session was encrypted (STARTTLS or implicit SSL)
    received_at: float = field(default_factory=time.time)

    @property
    def message(self) -> EmailMessage:
        """The message parsed with ``email.policy.default``."""
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class _Handler:
    """aiosmtpd handler; runs in the controller's event-loop thread."""

    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        failure = self.sink._pop_failure("MAIL")
        if failure:
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        failure = self.sink._recipient_failure(address) or self.sink._pop_failure("RCPT")
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        failure = self.sink._pop_failure("DATA")
        if failure:
            return failure
        transport = server.transport
        tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        auth_user = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode("utf-8", "replace")
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):  # only if someone sets decode_data=True
            data = data.encode("utf-8")
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(data),
            auth_user=auth_user,
            tls=tls,
            mail_options=list(envelope.mail_options),
        )
        queue_id = self.sink._store(mail)
        return f"250 2.0.0 OK queued as {queue_id}"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2: `user=<name>^Aauth=Bearer <token>^A^A`, base64, as the initial
        response or after an empty 334. A refused token gets Gmail's answer: a 334 with a JSON
        status, the client's empty line, then 535."""
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False)
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        assert isinstance(blob, bytes)
        fields = dict(
            part.split("=", 1) for part in blob.decode("utf-8", "replace").split("\x01")
            if "=" in part
        )
        user, bearer = fields.get("user", ""), fields.get("auth", "")
        token = bearer[7:] if bearer[:7].lower() == "bearer " else ""
        if user and token and self.sink._bearer_ok(user, token):
            self.sink._count_xoauth2(True)
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        self.sink._count_xoauth2(False)
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535


class _Controller(Controller):
    """Controller listening on a socket we bound ourselves (no port race), and
    building each connection's SMTP object from the sink's current settings."""

    def __init__(self, sink: SmtpSink, sock: socket.socket, **kwargs: Any):
        self._sink = sink
        self._sock = sock
        super().__init__(_Handler(sink), hostname=sink.host, port=sock.getsockname()[1], **kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def factory(self):
        kwargs = dict(self.SMTP_kwargs)
        kwargs["auth_required"] = (
            self._sink._credentials is not None or self._sink._bearer is not None
        )
        # aiosmtpd offers 8BITMIME unless it decodes the data itself
        kwargs["decode_data"] = not self._sink.offer_8bitmime
        with warnings.catch_warnings():
            # "Requiring AUTH while not requiring TLS" — intended for a test server.
            warnings.simplefilter("ignore")
            return SMTP(self.handler, loop=self.loop, **kwargs)


class SmtpSink:
    """Real SMTP server on loopback that records every accepted message."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        maildir: Path | str | None = None,
        tls: Literal["starttls", "ssl"] | None = None,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        require_tls: bool = False,
        server_hostname: str = "sink.lapak.test",
    ):
        if tls not in (None, "starttls", "ssl"):
            raise ValueError(f"tls must be None, 'starttls' or 'ssl', not {tls!r}")
        if tls and not certfile:
            raise ValueError("tls needs certfile (and keyfile); tests/certs.py makes a pair")
        self.host = host
        self.port = port
        self.maildir = Path(maildir) if maildir is not None else None
        self.tls = tls
        self.certfile = str(certfile) if certfile else None
        self.keyfile = str(keyfile) if keyfile else None
        self.require_tls = require_tls
        # Given explicitly so that aiosmtpd does not call socket.getfqdn() (DNS).
        self.server_hostname = server_hostname

        self._cond = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._failures: dict[str, collections.deque[str]] = {
            s: collections.deque() for s in _STAGES
        }
        self._bad_recipients: dict[str, str] = {}
        self._always: dict[str, str] = {}  # stage -> reply, from fail_always()
        self._credentials: tuple[str, str] | None = None
        self._bearer: Callable[[str, str], bool] | None = None  # require_xoauth2's check
        self.xoauth2_logins = {"accepted": 0, "refused": 0}
        # False: EHLO does not offer 8BITMIME (from the next connection on), as some old
        # servers; a client must then send 7-bit bodies.
        self.offer_8bitmime = True
        self._seq = itertools.count(1)
        self._controller: _Controller | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("SmtpSink already started")
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
        # Bind the listening socket ourselves and hand it to asyncio: with port=0
        # the kernel picks a free port and nobody can take it before we listen.
        family, _, _, _, sockaddr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.create_server(sockaddr[:2], family=family)
        self.port = sock.getsockname()[1]

        kwargs: dict[str, Any] = {
            "server_hostname": self.server_hostname,
            "authenticator": self._authenticate,
            "auth_require_tls": False,
        }
        ctx = self._server_ssl_context() if self.tls else None
        if self.tls == "starttls":
            kwargs["tls_context"] = ctx
            kwargs["require_starttls"] = self.require_tls
        elif self.tls == "ssl":
            kwargs["ssl_context"] = ctx
        controller = _Controller(self, sock, **kwargs)
        try:
            controller.start()
        except BaseException:
            sock.close()
            with contextlib.suppress(Exception):
                controller.stop(no_assert=True)
            raise
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        mode = self.tls or "plain"
        return f"<SmtpSink {self.host}:{self.port} {mode} messages={len(self._messages)}>"

    def _server_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.certfile, self.keyfile)  # type: ignore[arg-type]
        return ctx

    # -- received messages -------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        """Snapshot (a copy) of the messages received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        """Forget the received messages (failures and AUTH settings stay)."""
        with self._cond:
            self._messages.clear()

    def reset(self) -> None:
        """Forget messages, pending failures, rejected recipients and AUTH requirement;
        offer 8BITMIME again."""
        with self._cond:
            self._messages.clear()
            for queue in self._failures.values():
                queue.clear()
            self._bad_recipients.clear()
            self._always.clear()
            self._credentials = None
            self._bearer = None
            self.offer_8bitmime = True

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMail]:
        """Block until at least *count* messages arrived; return all of them.

        Raises TimeoutError (listing what did arrive) after *timeout* seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = [
                        f"{m.mail_from} -> {m.rcpt_tos}: {m.message['Subject']!r}"
                        for m in self._messages
                    ]
                    raise TimeoutError(
                        f"SmtpSink: expected {count} message(s) within {timeout}s, "
                        f"got {len(self._messages)}: {got}"
                    )
                self._cond.wait(remaining)
            return list(self._messages)

    def _store(self, mail: ReceivedMail) -> str:
        seq = next(self._seq)
        queue_id = f"{seq:05d}{uuid.uuid4().hex[:6]}"
        if self.maildir is not None:
            self._write_eml(mail, queue_id)
        with self._cond:
            self._messages.append(mail)
            self._cond.notify_all()
        return queue_id

    def _write_eml(self, mail: ReceivedMail, queue_id: str) -> None:
        assert self.maildir is not None
        nl = b"\r\n" if b"\r\n" in mail.data[:2000] else b"\n"
        # Like a real MDA: envelope sender/recipients as the first headers.
        head = f"Return-Path: <{mail.mail_from}>".encode() + nl
        for rcpt in mail.rcpt_tos:
            head += f"Delivered-To: {rcpt}".encode() + nl
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(mail.received_at))
        final = self.maildir / f"{stamp}-{queue_id}.eml"
        tmp = final.with_suffix(".tmp")
        tmp.write_bytes(head + mail.data)
        os.replace(tmp, final)

    # -- failure injection -------------------------------------------------

    def fail_next(self, code: int, text: str, times: int = 1, *, stage: Stage = "DATA") -> None:
        """Answer the next *times* commands of *stage* (DATA by default, or RCPT
        or MAIL) with ``code text``, e.g. 451 (transient) or 550 (permanent).
        A message rejected at DATA is not stored."""
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {_STAGES}")
        with self._cond:
            self._failures[stage].extend([_reply(code, text)] * times)

    def fail_recipient(self, address: str, code: int, text: str) -> None:
        """Always reject ``RCPT TO:<address>`` (case-insensitive) with ``code text``."""
        with self._cond:
            self._bad_recipients[address.lower()] = _reply(code, text)

    def fail_always(self, code: int, text: str, *, stage: Stage = "MAIL") -> None:
        """Answer every command of *stage* (MAIL by default: every mail) with ``code text``
        until :meth:`accept_again` or :meth:`reset`, e.g. 554 for a relay that refuses
        everything."""
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {_STAGES}")
        with self._cond:
            self._always[stage] = _reply(code, text)

    def accept_again(self) -> None:
        """Undo :meth:`fail_always` (queued and per-recipient failures stay)."""
        with self._cond:
            self._always.clear()

    def _pop_failure(self, stage: str) -> str | None:
        with self._cond:
            queue = self._failures[stage]
            return queue.popleft() if queue else self._always.get(stage)

    def _recipient_failure(self, address: str) -> str | None:
        with self._cond:
            return self._bad_recipients.get(address.lower())

    # -- AUTH --------------------------------------------------------------

    def require_auth(self, username: str, password: str) -> None:
        """From the next connection on, require AUTH (PLAIN or LOGIN, allowed
        without TLS) with exactly these credentials.  Without this call any
        credentials a client offers are accepted."""
        with self._cond:
            self._credentials = (username, password)

    def require_xoauth2(self, check: Callable[[str, str], bool]) -> None:
        """From the next connection on, require AUTH XOAUTH2 with a bearer token that
        `check(user, token)` accepts (e.g. a test token server's introspection, or
        `lambda user, token: token in issued`). Password logins are refused then, unless
        :meth:`require_auth` allows them too."""
        with self._cond:
            self._bearer = check

    def _bearer_ok(self, user: str, token: str) -> bool:
        with self._cond:
            check = self._bearer
        return check is not None and bool(check(user, token))

    def _count_xoauth2(self, accepted: bool) -> None:
        with self._cond:
            self.xoauth2_logins["accepted" if accepted else "refused"] += 1

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        with self._cond:
            expected = self._credentials
            if expected is None and self._bearer is not None:
                return AuthResult(success=False, handled=False)  # OAuth2 only
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = expected is None or (login, password) == expected
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


def _reply(code: int, text: str) -> str:
    if not 200 <= int(code) <= 599:
        raise ValueError(f"bad SMTP reply code {code}")
    return f"{int(code)} {text}"
