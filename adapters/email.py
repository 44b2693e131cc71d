"""Email channel: the desk's mailbox over IMAP (imap-tools).

Cursor = (UIDVALIDITY, last UID). Messages are fetched with BODY.PEEK (never marked seen by the
fetch), stored with the cursor in one transaction, and only then is `after` applied on the
server (seen / move / keep — never delete). A changed UIDVALIDITY rescans the folder; the store
dedupes by Message-ID (content hash when there is none).
"""

from __future__ import annotations

import contextlib
import email
import email.message
import functools
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted, MailMessage
from imap_tools.errors import ImapToolsError, MailboxLoginError
from lapakd.adapters.base import (
    Adapter,
    Attachment,
    Batch,
    Content,
    Inbound,
    TransientError,
)

from lapakd.config import Field, port, seconds, size_bytes
from lapakd.mailparse import MailParseError, external_id_for, headers_only, parse_email

BATCH_SIZE = 100


class _RawMailMessage(MailMessage):
    """imap-tools' message, keeping the exact bytes the server sent (stored verbatim).

    Intake needs only the bytes and the UID: the email.message parse imap-tools does for every
    message (~0.1 ms; processing parses the stored bytes itself) happens only if `obj` is used.
    """

    def __init__(self, fetch_data: list) -> None:  # not super().__init__: it parses
        raw, self._raw_uid_data, self._raw_flag_data = self._get_message_data_parts(fetch_data)
        self.raw_bytes: bytes = raw or b""

    @functools.cached_property
    def obj(self) -> email.message.Message:  # type: ignore[override]
        return email.message_from_bytes(self.raw_bytes)


class _Unencrypted(MailBoxUnencrypted):
    email_message_class = _RawMailMessage


class _StartTls(MailBoxStartTls):
    email_message_class = _RawMailMessage


class _Ssl(MailBox):
    email_message_class = _RawMailMessage


def _human_size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB".replace(".", ",")


def _after_check(after: str) -> str | None:
    if after in ("seen", "keep") or (after.startswith("move:") and after[5:]):
        return None
    return "must be seen, keep or move:FOLDER (lapakd never deletes mail)"


class EmailAdapter(Adapter):
    name = "email"
    CONFIG: ClassVar[dict[str, Field]] = {
        "host": Field(str, "127.0.0.1"),
        "port": Field(int, 143, check=port()),
        "security": Field(str, "none", choices=("none", "starttls", "ssl")),
        "username": Field(str, ""),  # an IMAP login, not necessarily an address
        "password": Field(str, "", secret=True),
        "folder": Field(str, "INBOX"),
        "after": Field(str, "seen", check=_after_check),
        "poll_seconds": Field(int, 60, check=seconds()),
        "max_message_bytes": Field(int, 26214400, check=size_bytes()),
        "timeout_seconds": Field(int, 60, check=seconds(1, 3600)),
        "ca_file": Field(str, "", path=True),
    }

    def __init__(self, config: Any, section: Any) -> None:
        super().__init__(config, section)
        self._box: MailBoxUnencrypted | MailBox | None = None

    # -- connection -------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        ca = self.section.ca_file
        return ssl.create_default_context(cafile=ca or None)

    def _connect(self) -> MailBoxUnencrypted | MailBox:
        s = self.section
        timeout = s.timeout_seconds
        where = f"{s.host}:{s.port}"
        try:
            if s.security == "ssl":
                box: Any = _Ssl(s.host, s.port, timeout=timeout, ssl_context=self._ssl_context())
            elif s.security == "starttls":
                box = _StartTls(s.host, s.port, timeout=timeout, ssl_context=self._ssl_context())
            else:
                box = _Unencrypted(s.host, s.port, timeout=timeout)
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            raise TransientError(f"IMAP {where}: cannot connect: {_reason(exc)}") from None
        try:
            box.login(s.username, s.password, initial_folder=None)
        except MailboxLoginError:
            _quiet_logout(box)
            raise TransientError(
                f"IMAP {where}: login failed for {s.username} "
                "(check channels.email.username and password)"
            ) from None
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            _quiet_logout(box)
            raise TransientError(f"IMAP {where}: login: {_reason(exc)}") from None
        return box

    def close(self) -> None:
        if self._box is not None:
            _quiet_logout(self._box)
            self._box = None

    # -- fetching ---------------------------------------------------------------------------

    def fetch(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        s = self.section
        box = self._connect()
        self._box = box
        try:
            try:
                box.folder.set(s.folder)
                uidvalidity = int(box.folder.status(s.folder, ["UIDVALIDITY"])["UIDVALIDITY"])
            except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
                raise TransientError(
                    f"IMAP folder {s.folder!r}: {_reason(exc)} (check channels.email.folder)"
                ) from None
            cursor = cursor or {}
            last_uid = int(cursor.get("last_uid", 0))
            if cursor and cursor.get("uidvalidity") != uidvalidity:
                # The server renumbered the folder: rescan it all; Message-IDs dedupe.
                last_uid = 0
            else:
                self._apply_after(box, [int(u) for u in cursor.get("pending_ack", [])])
            try:
                found = box.uids(f"UID {last_uid + 1}:*")
            except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
                raise TransientError(f"IMAP search: {_reason(exc)}") from None
            # "N:*" always includes the highest UID, even when it is below N.
            uids = sorted(int(u) for u in found if int(u) > last_uid)
            for start in range(0, len(uids), BATCH_SIZE):
                chunk = uids[start : start + BATCH_SIZE]
                messages = self._fetch_chunk(box, chunk, uidvalidity)
                yield Batch(
                    messages,
                    {"uidvalidity": uidvalidity, "last_uid": chunk[-1], "pending_ack": chunk},
                )
            if not uids and cursor.get("uidvalidity") != uidvalidity:
                yield Batch([], {"uidvalidity": uidvalidity, "last_uid": last_uid})
        finally:
            self.close()

    def _fetch_chunk(
        self, box: MailBoxUnencrypted | MailBox, chunk: list[int], uidvalidity: int
    ) -> list[Inbound]:
        limit = self.section.max_message_bytes
        try:
            sizes = self._sizes(box, chunk)
            small = [u for u in chunk if sizes.get(u, 0) <= limit]
            big = [u for u in chunk if sizes.get(u, 0) > limit]
            fetched: dict[int, tuple[bytes, bool]] = {}
            if small:
                for msg in box.fetch(
                    uid_list=[str(u) for u in small], mark_seen=False, bulk=20
                ):
                    fetched[int(msg.uid or 0)] = (msg.raw_bytes, False)
            if big:
                for msg in box.fetch(
                    uid_list=[str(u) for u in big], mark_seen=False, headers_only=True
                ):
                    fetched[int(msg.uid or 0)] = (msg.raw_bytes, True)
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            raise TransientError(f"IMAP fetch: {_reason(exc)}") from None
        now = datetime.now(UTC)
        out = []
        for uid in chunk:
            if uid not in fetched:  # expunged between SEARCH and FETCH: nothing to keep
                continue
            raw, oversized = fetched[uid]
            meta: dict[str, Any] = {
                "uid": uid, "uidvalidity": uidvalidity, "folder": self.section.folder,
                "size": sizes.get(uid, len(raw)),
            }
            if oversized:
                meta["oversized"] = True
            mid = _message_id(raw)
            out.append(Inbound(external_id_for(raw, mid), raw, "eml", now, meta))
        return out

    @staticmethod
    def _sizes(box: MailBoxUnencrypted | MailBox, uids: list[int]) -> dict[int, int]:
        typ, data = box.client.uid("FETCH", ",".join(map(str, uids)), "(UID RFC822.SIZE)")
        if typ != "OK":
            raise TransientError(f"IMAP size check: {typ}")
        sizes: dict[int, int] = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid = re.search(rb"UID (\d+)", line)
            size = re.search(rb"RFC822\.SIZE (\d+)", line)
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    def acknowledge(self, batch: Batch) -> None:
        if self._box is not None and batch.cursor:
            self._apply_after(self._box, [int(u) for u in batch.cursor.get("pending_ack", [])])

    def _apply_after(self, box: MailBoxUnencrypted | MailBox, uids: list[int]) -> None:
        after = self.section.after
        if not uids or after == "keep":
            return
        uid_list = [str(u) for u in uids]
        try:
            if after == "seen":
                box.flag(uid_list, "\\Seen", True)
            else:
                box.move(uid_list, after[5:])
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            # The messages are stored; a failed flag/move is retried on the next poll.
            raise TransientError(f"IMAP {after}: {_reason(exc)}") from None

    # -- parsing ----------------------------------------------------------------------------

    def parse(self, raw: bytes, meta: dict[str, Any]) -> Content:
        desk = self.config.desk.email.lower()
        oversized = bool(meta.get("oversized"))
        try:
            mail = parse_email(headers_only(raw) if oversized else raw)
        except MailParseError:
            raise
        extra = {
            "message_id": mail.message_id,
            "in_reply_to": mail.in_reply_to,
            "references": mail.references,
            "headers": {
                k: v for k, v in mail.headers.items()
                if k.startswith("x-lapakd") or k in ("reply-to", "to", "cc")
            },
        }
        content = Content(
            kind="complaint",
            subject=mail.subject,
            text=mail.text,
            sender=mail.from_addr,
            sender_name=mail.from_name,
            occurred_at=mail.date,
            attachments=[
                Attachment(a.filename, a.content_type, a.data) for a in mail.attachments
            ],
            reply_ref={
                "address": mail.reply_to or mail.from_addr,
                "message_id": mail.message_id,
                "references": mail.references,
                "subject": mail.subject,
            },
            notes=list(mail.notes),
            extra=extra,
        )
        if oversized:
            size = _human_size(int(meta.get("size", 0)))
            content.text = (
                f"[Email terlalu besar ({size}); isi dan lampirannya tidak diunduh. "
                "Admin dapat membukanya langsung di kotak surat desk.]"
            )
            content.notes.append(f"message of {size} over max_message_bytes: headers only")
        if mail.from_addr == desk:
            content.kind = "own"
        elif mail.is_bounce:
            content.kind = "bounce"
            content.bounced_ids = list(mail.bounced_message_ids)
            content.bounce_status = mail.bounce_status
            extra["bounce_headers"] = mail.bounce_headers
        elif mail.auto_submitted or any(desk in loop for loop in mail.x_loop):
            content.kind = "auto_reply"
        return content


def _message_id(raw: bytes) -> str | None:
    m = re.search(rb"^message-id:[ \t]*<?([^\s<>]+)>?", headers_only(raw), re.I | re.M)
    return m.group(1).decode("ascii", "replace") if m else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _quiet_logout(box: Any) -> None:
    try:
        box.logout()
    except Exception:  # noqa: BLE001 - the connection is being dropped anyway
        with contextlib.suppress(Exception):
            box.client.shutdown()
