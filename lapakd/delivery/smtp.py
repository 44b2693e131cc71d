"""Send emails over SMTP with smtplib (none / STARTTLS / SSL, optional AUTH: a password,
or XOAUTH2 with `auth = "oauth2"`, lapakd/mail/oauth2.py): `send_many` keeps
one or several connections (`SmtpSession`) busy from one thread.

4xx replies, refused connections and timeouts are transient (retried by the outbox); 5xx
replies are permanent. The message keeps its Message-ID, so a retry is recognisably the same.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import re
import smtplib
import ssl
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from lapakd.adapters.base import NeedsReauth, PermanentError, TransientError
from lapakd.errors import network_reason
from lapakd.mail import oauth2

if TYPE_CHECKING:
    from lapakd.config import Config


T = TypeVar("T")
Reply = tuple[int, bytes]


class SmtpSession:
    """One SMTP connection reused for a batch of messages, opened on first use.

    After any failure the connection is dropped, so the next message starts clean."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.where = f"SMTP {cfg.smtp.host}:{cfg.smtp.port}"
        self._client: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        return _ssl_context(self.cfg.smtp.ca_file or None)

    def _connect(self) -> smtplib.SMTP:
        s = self.cfg.smtp
        client: smtplib.SMTP | None = None
        try:
            if s.security == "ssl":
                client = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout_seconds, context=self._context()
                )
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
                if s.security == "starttls":
                    client.starttls(context=self._context())
            if s.auth == "oauth2":
                self._login_oauth2(client)
            elif s.username:
                client.login(s.username, s.password)
            client.ehlo_or_helo_if_needed()  # the extensions (SIZE, 8BITMIME...) are known
        except TransientError:
            _drop(client)
            raise
        except oauth2.OAuth2Error as exc:
            _drop(client)
            error = NeedsReauth if exc.needs_admin else TransientError
            raise error(f"{self.where}: {exc}") from None
        except oauth2.LoginRefused:
            _drop(client)
            raise TransientError(
                f"{self.where}: XOAUTH2 login refused for {s.username} with a fresh access "
                "token (check smtp.username and oauth2_scope)"
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientError(
                f"{self.where}: login refused ({exc.smtp_code}); check smtp.username and password"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _classify(self.where, exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"{self.where}: {network_reason(exc)}") from None
        return client

    def _login_oauth2(self, client: smtplib.SMTP) -> None:
        """AUTH XOAUTH2; a refused cached token is refreshed once (lapakd/mail/oauth2.py).
        Raises OAuth2Error / LoginRefused, or smtplib's errors."""
        s = self.cfg.smtp
        settings = oauth2.OAuth2Settings.from_section("smtp", s, self.cfg.data_dir)
        client.ehlo_or_helo_if_needed()
        if "XOAUTH2" not in client.esmtp_features.get("auth", "").upper().split():
            raise TransientError(
                f"{self.where}: the server does not offer AUTH XOAUTH2 (check smtp.host, "
                "port and security: Google smtp.gmail.com 465 ssl, Microsoft "
                "smtp.office365.com 587 starttls)")

        def attempt(token: str) -> None:
            def answer(challenge: bytes | None = None) -> str:
                # The initial response; to an error challenge (a JSON status) an empty line,
                # after which the server sends its 535.
                return oauth2.xoauth2_string(s.username, token) if challenge is None else ""

            try:
                client.auth("XOAUTH2", answer, initial_response_ok=True)
            except smtplib.SMTPAuthenticationError:
                raise oauth2.LoginRefused from None

        oauth2.login_with_token(oauth2.token_source(settings), attempt)

    def offers_8bitmime(self) -> bool:
        """Connect if need be (TransientError / PermanentError); whether the server takes
        8-bit bodies (BODY=8BITMIME, RFC 6152)."""
        if self._client is None:
            self._client = self._connect()
        return self._client.does_esmtp and self._client.has_extn("8bitmime")

    def _conversation(
        self, data: bytes, recipients: list[str], eight_bit: bool
    ) -> Generator[None, Reply, dict[str, Any]]:
        """One mail transaction, as smtplib's sendmail has it: each `yield` follows a command
        sent, and receives the server's reply to it. Raises TransientError / PermanentError.
        The connection is open and greeted (`offers_8bitmime`, which send_many asks first)."""
        client, where = self._client, self.where
        assert client is not None
        sender = self.cfg.desk.email
        options = []
        if client.does_esmtp and client.has_extn("size"):
            options.append(f"SIZE={len(data)}")
        utf8 = not all(a.isascii() for a in (sender, *recipients))
        if utf8 and not client.has_extn("smtputf8"):
            raise TransientError(
                f"{where}: non-ASCII address and the server does not offer SMTPUTF8"
            )
        if eight_bit and not client.has_extn("8bitmime"):  # composed for another server
            raise TransientError(f"{where}: an 8bit body and the server does not offer 8BITMIME")
        if utf8 or eight_bit:
            options.append("BODY=8BITMIME")  # as smtplib's send_message would ask
        if utf8:
            client.command_encoding = "utf-8"
            options.append("SMTPUTF8")
        command = f"FROM:{_quoted(sender)}"
        client.putcmd("mail", " ".join([command, *options]))
        code, text = yield
        if code != 250:
            raise _classify(where, code, text)
        refused: dict[str, tuple[int, bytes]] = {}
        for rcpt in recipients:
            client.putcmd("rcpt", f"TO:{_quoted(rcpt)}")
            code, text = yield
            if code not in (250, 251):
                refused[rcpt] = (code, text)
            if code == 421:  # the server is closing the connection
                raise _classify(where, code, text)
        if len(refused) == len(recipients):
            detail = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in refused.items())
            if all(400 <= c < 500 for c, _ in refused.values()):
                raise TransientError(f"{where}: recipients deferred: {detail}")
            raise PermanentError(f"{where}: recipients refused: {detail}")
        client.putcmd("data")
        code, text = yield
        if code != 354:
            raise _classify(where, code, text)
        client.send(_dot_stuffed(data))
        code, text = yield
        if code != 250:
            raise _classify(where, code, text)
        return {"refused": {r: f"{c} {_text(m)}" for r, (c, m) in refused.items()}}

    def _failed(self, exc: BaseException) -> Exception:
        """The connection is dropped after any failure, so the next message starts clean."""
        self.close()
        if isinstance(exc, TransientError | PermanentError):
            return exc
        if isinstance(exc, smtplib.SMTPResponseException):
            return _classify(self.where, exc.smtp_code, exc.smtp_error)
        if isinstance(exc, OSError | smtplib.SMTPException):
            return TransientError(f"{self.where}: {network_reason(exc)}")
        return TransientError(f"{self.where}: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def _drop(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()
        client.close()


@functools.lru_cache(maxsize=4)
def _ssl_context(cafile: str | None) -> ssl.SSLContext:
    # Loading the system CA store costs ~0.1 s: do it once, not per message.
    return ssl.create_default_context(cafile=cafile)


@contextlib.contextmanager
def connections(cfg: Config, count: int) -> Iterator[list[SmtpSession]]:
    """`count` sessions (each connects on first use), all closed on the way out."""
    sessions = [SmtpSession(cfg) for _ in range(count)]
    try:
        yield sessions
    finally:
        for session in sessions:
            session.close()


Outcome = dict[str, Any] | Exception  # a send's result, or the error that failed it
_END = object()


def send_many(
    sessions: Sequence[SmtpSession],
    jobs: Iterable[T],
    message: Callable[[T, bool], tuple[bytes, list[str], bool]],
) -> Iterator[tuple[T, Outcome]]:
    """Send every job on whichever of `sessions` is free, several at once in one thread;
    yield (job, outcome) as each transaction ends. Also the way to send a single mail.

    A job's message is made only when a connection is free (and open) for it —
    `message(job, offers_8bitmime)` gives (data, recipients, whether the body is 8bit) — and a
    connection's next command goes out as soon as its reply is read: the server works on the
    other connections' commands while this thread reads a reply, composes the next mail or
    records the last one (the caller, between two outcomes). Jobs are taken
    from `jobs` lazily, so a caller stops new sends by ending that iterator; transactions
    already begun are finished. The outcome is {"refused": {recipient: "code text"}} (the
    recipients the server refused, when not all were), or the TransientError / PermanentError
    that failed the mail (an exception from `message` is the job's outcome too)."""
    free = list(reversed(sessions))
    active: collections.deque[tuple[SmtpSession, T, Generator[None, Reply, dict[str, Any]]]]
    active = collections.deque()
    pending = iter(jobs)
    while True:
        while free:
            job = next(pending, _END)
            if job is _END:
                break
            session = free.pop()
            try:
                offers_8bit = session.offers_8bitmime()  # connects if need be
            except Exception as exc:  # noqa: BLE001 - this job's failure; the others go on
                free.insert(0, session)  # failed: the last one to be taken again
                yield job, session._failed(exc)  # type: ignore[misc]
                continue
            try:
                data, recipients, eight_bit = message(job, offers_8bit)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - as above
                free.append(session)
                yield job, exc  # type: ignore[misc]
                continue
            conversation = session._conversation(data, recipients, eight_bit)
            try:
                next(conversation)  # send MAIL FROM
            except Exception as exc:  # noqa: BLE001 - as above
                free.insert(0, session)  # failed: the last one to be taken again
                yield job, session._failed(exc)  # type: ignore[misc]
                continue
            active.append((session, job, conversation))  # type: ignore[arg-type]
        if not active:
            return
        session, job, conversation = active.popleft()  # the oldest command asked
        try:
            assert session._client is not None
            conversation.send(session._client.getreply())
        except StopIteration as finished:
            free.append(session)
            yield job, finished.value
            continue
        except Exception as exc:  # noqa: BLE001 - as above
            free.insert(0, session)
            yield job, session._failed(exc)
            continue
        active.append((session, job, conversation))


@functools.lru_cache(maxsize=4096)
def _quoted(address: str) -> str:
    # smtplib's own quoting (email.utils.parseaddr: ~14 us) once per address, not per mail.
    return smtplib.quoteaddr(address)


def _dot_stuffed(data: bytes) -> bytes:
    """DATA's payload: leading dots doubled, then CRLF.CRLF (as smtplib's data() does)."""
    data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _classify(where: str, code: int, text: bytes | str) -> Exception:
    message = f"{where}: {code} {_text(text)[:200]}"
    if 500 <= code < 600:
        return PermanentError(message)
    return TransientError(message)
