"""Send one email over SMTP (none / STARTTLS / SSL, optional AUTH).

4xx replies, refused connections and timeouts are transient (retried by the outbox); 5xx
replies are permanent. The message keeps its Message-ID, so a retry is recognisably the same.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from lapakd.adapters.base import PermanentError, TransientError

if TYPE_CHECKING:
    from lapakd.config import Config


def _connect(cfg: Config) -> smtplib.SMTP:
    s = cfg.smtp
    context = ssl.create_default_context(cafile=s.ca_file or None)
    if s.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            s.host, s.port, timeout=s.timeout_seconds, context=context
        )
    else:
        client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        if s.security == "starttls":
            client.starttls(context=context)
    if s.username:
        client.login(s.username, s.password)
    return client


def send(cfg: Config, message: EmailMessage, recipients: list[str]) -> dict[str, Any]:
    where = f"SMTP {cfg.smtp.host}:{cfg.smtp.port}"
    try:
        client = _connect(cfg)
    except smtplib.SMTPAuthenticationError as exc:
        raise TransientError(
            f"{where}: login refused ({exc.smtp_code}); check smtp.username and password"
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise _classify(where, exc.smtp_code, exc.smtp_error) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientError(f"{where}: {_reason(exc)}") from None
    try:
        refused = client.send_message(message, from_addr=cfg.desk.email, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(
            f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items()
        )
        if all(400 <= c < 500 for c in codes):
            raise TransientError(f"{where}: recipients deferred: {detail}") from None
        raise PermanentError(f"{where}: recipients refused: {detail}") from None
    except smtplib.SMTPResponseException as exc:
        raise _classify(where, exc.smtp_code, exc.smtp_error) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientError(f"{where}: {_reason(exc)}") from None
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    return {"refused": {r: f"{c} {_text(m)}" for r, (c, m) in refused.items()}}


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
