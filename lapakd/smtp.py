"""Send one email over SMTP (none / STARTTLS / SSL, optional AUTH).

4xx replies, refused connections and timeouts are transient (retried by the outbox); 5xx
replies are permanent. The message keeps its Message-ID, so a retry is recognisably the same.
"""

from __future__ import annotations

import functools
import smtplib
import socket
import ssl
from typing import TYPE_CHECKING, Any

from lapakd.adapters.base import PermanentError, TransientError

if TYPE_CHECKING:
    from lapakd.config import Config


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
        try:
            if s.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout_seconds, context=self._context()
                )
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
                if s.security == "starttls":
                    client.starttls(context=self._context())
            if s.username:
                client.login(s.username, s.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientError(
                f"{self.where}: login refused ({exc.smtp_code}); check smtp.username and password"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _classify(self.where, exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"{self.where}: {_reason(exc)}") from None
        return client

    def send(self, data: bytes, recipients: list[str]) -> dict[str, Any]:
        """Send a message already flattened (CRLF line ends) to the envelope recipients."""
        if self._client is None:
            self._client = self._connect()
        where = self.where
        sender = self.cfg.desk.email
        options: list[str] = []
        if not all(a.isascii() for a in (sender, *recipients)):
            options = ["SMTPUTF8", "BODY=8BITMIME"]  # as smtplib's send_message would ask
        try:
            if options and not self._client.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError(
                    "non-ASCII address and the server does not offer SMTPUTF8"
                )
            refused = self._client.sendmail(sender, recipients, data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(
                f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items()
            )
            if all(400 <= c < 500 for c in codes):
                raise TransientError(f"{where}: recipients deferred: {detail}") from None
            raise PermanentError(f"{where}: recipients refused: {detail}") from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise _classify(where, exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise TransientError(f"{where}: {_reason(exc)}") from None
        return {"refused": {r: f"{c} {_text(m)}" for r, (c, m) in refused.items()}}

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


@functools.lru_cache(maxsize=4)
def _ssl_context(cafile: str | None) -> ssl.SSLContext:
    # Loading the system CA store costs ~0.1 s: do it once, not per message.
    return ssl.create_default_context(cafile=cafile)


def send(cfg: Config, data: bytes, recipients: list[str]) -> dict[str, Any]:
    """Send one message on a connection of its own."""
    session = SmtpSession(cfg)
    try:
        return session.send(data, recipients)
    finally:
        session.close()


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _classify(where: str, code: int, text: bytes | str) -> Exception:
    message = f"{where}: {code} {_text(text)[:200]}"
    if 500 <= code < 600:
        return PermanentError(message)
    return TransientError(message)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
