"""Email channel: the desk's mailbox over IMAP (imap-tools).

Cursor = (UIDVALIDITY, last UID). Messages are fetched with BODY.PEEK (never marked seen by the
fetch), stored with the cursor in one transaction, and only then is `after` applied on the
server (seen / move / keep — never delete). The store dedupes by Message-ID (content hash when
there is none; a different mail reusing a stored Message-ID is kept under Message-ID + hash).

The first poll of a folder (no cursor), and the first after its UIDVALIDITY changed (a rebuilt
mailbox, renumbered), meet mail that was there before: `first_run` decides which of it is taken
("unseen": without \\Seen; "since:YYYY-MM-DD": INTERNALDATE on or after the day; "all"). The
rest is stored as `seen_before` (kept, never processed, the server not touched). The cursor
remembers the highest UID of that backlog (`baseline.until`), so a crash half-way resumes with
the same rule; mail that arrives after it is always taken. After a rebuild, mail whose
Message-ID is already stored is a duplicate even if the server changed its bytes.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import functools
import imaplib
import re
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted, MailMessage
from imap_tools.errors import ImapToolsError, MailboxLoginError
from lapakd.adapters.base import (
    Adapter,
    Attachment,
    Batch,
    Content,
    Inbound,
    NeedsReauth,
    TransientError,
    Watch,
)

from lapakd.config import Field, mail_auth_fields, port, seconds, size_bytes
from lapakd.errors import network_reason
from lapakd.mail import oauth2
from lapakd.mail.parse import MailParseError, external_id_for, headers_only, parse_email

BATCH_SIZE = 100
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def first_run_rule(value: str) -> tuple[str, date | None]:
    """`first_run` as (mode, day): ("unseen", None), ("all", None) or ("since", day).

    Raises ValueError with what is wrong."""
    if value in ("unseen", "all"):
        return value, None
    if value.startswith("since:"):
        try:
            return "since", date.fromisoformat(value[6:].strip())
        except ValueError:
            raise ValueError("has no valid date after since: (e.g. since:2026-01-31)") from None
    raise ValueError("must be unseen, all or since:YYYY-MM-DD")


def _first_run_problem(value: str) -> str | None:
    try:
        first_run_rule(value)
    except ValueError as exc:
        return str(exc)
    return None


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
    watches = True
    CONFIG: ClassVar[dict[str, Field]] = {
        "host": Field(str, "127.0.0.1"),
        "port": Field(int, 143, check=port()),
        "security": Field(str, "none", choices=("none", "starttls", "ssl")),
        # an IMAP login, not necessarily an address
        "username": Field(str, "", needed_when=("auth", "oauth2")),
        "password": Field(str, "", secret=True),
        **mail_auth_fields(),  # auth = password | oauth2, and the oauth2_* keys
        "folder": Field(str, "INBOX"),
        "after": Field(str, "seen", check=_after_check),
        # What the first poll of the folder takes of the mail already there (module docstring).
        "first_run": Field(str, "unseen", check=_first_run_problem),
        "acknowledge": Field(bool, True),  # a receipt with the ticket to the citizen
        "poll_seconds": Field(int, 60, check=seconds()),
        "max_message_bytes": Field(int, 26214400, check=size_bytes()),
        "timeout_seconds": Field(int, 60, check=seconds(1, 3600)),
        "ca_file": Field(str, "", path=True),
        # Hold an IMAP IDLE connection when the server offers it: new mail is taken at once.
        "idle": Field(bool, True),
    }

    def __init__(self, config: Any, section: Any) -> None:
        super().__init__(config, section)
        self._box: MailBoxUnencrypted | MailBox | None = None

    # -- connection -------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        ca = self.section.ca_file
        return ssl.create_default_context(cafile=ca or None)

    def _open(self) -> MailBoxUnencrypted | MailBox:
        """A connection, greeted, not logged in. Raises TransientError."""
        s = self.section
        timeout = s.timeout_seconds
        try:
            if s.security == "ssl":
                return _Ssl(s.host, s.port, timeout=timeout, ssl_context=self._ssl_context())
            if s.security == "starttls":
                return _StartTls(s.host, s.port, timeout=timeout, ssl_context=self._ssl_context())
            return _Unencrypted(s.host, s.port, timeout=timeout)
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            raise TransientError(
                f"IMAP {s.host}:{s.port}: cannot connect: {network_reason(exc)}"
            ) from None

    def _connect(self) -> MailBoxUnencrypted | MailBox:
        """A logged-in connection (password or OAuth2, as `auth` says). Every IMAP connection
        of the channel is made here. Raises TransientError / NeedsReauth."""
        s = self.section
        if s.auth == "oauth2":
            return self._connect_oauth2()
        where = f"{s.host}:{s.port}"
        box: Any = self._open()
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
            raise TransientError(f"IMAP {where}: login: {network_reason(exc)}") from None
        return box

    def _connect_oauth2(self) -> MailBoxUnencrypted | MailBox:
        """Log in with XOAUTH2; a refused cached token is refreshed once (lapakd/mail/oauth2.py)."""
        s = self.section
        where = f"{s.host}:{s.port}"
        settings = oauth2.OAuth2Settings.from_section("email", s, self.config.data_dir)
        source = oauth2.token_source(settings)

        def attempt(token: str) -> MailBoxUnencrypted | MailBox:
            box: Any = self._open()
            try:
                box.xoauth2(s.username, token, initial_folder=None)
            except imaplib.IMAP4.abort as exc:  # the connection broke: not a refusal
                _quiet_logout(box)
                raise TransientError(f"IMAP {where}: login: {network_reason(exc)}") from None
            except (MailboxLoginError, imaplib.IMAP4.error):
                _quiet_logout(box)
                raise oauth2.LoginRefused from None
            except (OSError, ImapToolsError) as exc:
                _quiet_logout(box)
                raise TransientError(f"IMAP {where}: login: {network_reason(exc)}") from None
            return box

        try:
            return oauth2.login_with_token(source, attempt)
        except oauth2.OAuth2Error as exc:
            error = NeedsReauth if exc.needs_admin else TransientError
            raise error(f"IMAP {where}: {exc}") from None
        except oauth2.LoginRefused:
            raise TransientError(
                f"IMAP {where}: XOAUTH2 login refused for {s.username} with a fresh access "
                "token (check channels.email.username and oauth2_scope)"
            ) from None

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
                    f"IMAP folder {s.folder!r}: {network_reason(exc)} (check channels.email.folder)"
                ) from None
            cursor = cursor or {}
            last_uid = int(cursor.get("last_uid", 0))
            renumbered = bool(cursor) and cursor.get("uidvalidity") != uidvalidity
            baseline: dict[str, Any] | None = cursor.get("baseline")
            if not cursor or renumbered:
                # First poll, or the server renumbered the folder: what is there now is the
                # backlog that first_run sorts out (module docstring).
                last_uid = 0
                baseline = {"rebuilt": True} if renumbered else {}
            else:
                self._apply_after(box, [int(u) for u in cursor.get("pending_ack", [])])
            uids = self._search(box, f"UID {last_uid + 1}:*", last_uid)
            if baseline is not None and "until" not in baseline:
                baseline["until"] = uids[-1] if uids else 0
            until = int(baseline["until"]) if baseline else 0
            backlog = [u for u in uids if u <= until]
            taken = self._first_run_taken(box, backlog)
            for start in range(0, len(uids), BATCH_SIZE):
                chunk = uids[start : start + BATCH_SIZE]
                messages = self._fetch_chunk(box, chunk, uidvalidity)
                for m in messages:
                    if m.meta["uid"] > until:
                        continue
                    if baseline and baseline.get("rebuilt"):
                        m.meta["rebuilt"] = True
                    if m.meta["uid"] not in taken:
                        m.meta["seen_before"] = f"first_run = {s.first_run}"
                next_cursor: dict[str, Any] = {
                    "uidvalidity": uidvalidity, "last_uid": chunk[-1],
                    # Only what was taken is acknowledged: mail from before is left as it is.
                    "pending_ack": [u for u in chunk if u > until or u in taken],
                }
                if chunk[-1] < until:
                    next_cursor["baseline"] = baseline
                yield Batch(messages, next_cursor)
            if not uids and (renumbered or not cursor):
                yield Batch([], {"uidvalidity": uidvalidity, "last_uid": last_uid})
        finally:
            self.close()

    @staticmethod
    def _search(box: MailBoxUnencrypted | MailBox, criteria: str, above: int) -> list[int]:
        try:
            found = box.uids(criteria)
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            raise TransientError(f"IMAP search: {network_reason(exc)}") from None
        # "N:*" always includes the highest UID, even when it is below N.
        return sorted(int(u) for u in found if int(u) > above)

    def _first_run_taken(self, box: MailBoxUnencrypted | MailBox, backlog: list[int]) -> set[int]:
        """The UIDs of the backlog that `first_run` takes (the others are seen before)."""
        if not backlog:
            return set()
        mode, day = first_run_rule(self.section.first_run)
        if mode == "all":
            return set(backlog)
        span = f"UID {backlog[0]}:{backlog[-1]}"
        if mode == "unseen":
            criteria = f"{span} UNSEEN"
        else:  # SINCE compares the INTERNALDATE (when the server received the mail)
            assert day is not None
            criteria = f"{span} SINCE {day.day}-{_MONTHS[day.month - 1]}-{day.year}"
        wanted = set(backlog)
        return {u for u in self._search(box, criteria, backlog[0] - 1) if u in wanted}

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
            raise TransientError(f"IMAP fetch: {network_reason(exc)}") from None
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
            raise TransientError(f"IMAP {after}: {network_reason(exc)}") from None

    # -- push: IMAP IDLE (RFC 2177) ---------------------------------------------------------

    def watch(self) -> Watch | None:
        """The folder held in IDLE on a connection of its own; None when `idle` is off or the
        server does not offer IDLE (CAPABILITY after login)."""
        s = self.section
        if not s.idle:
            return None
        box = self._connect()
        try:
            typ, data = box.client.capability()
            offered = b" ".join(d for d in data if isinstance(d, bytes)).upper().split()
            if typ != "OK" or b"IDLE" not in offered:
                _quiet_logout(box)
                return None
            box.folder.set(s.folder)
            return _ImapIdle(box)
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            _quiet_logout(box)
            raise TransientError(
                f"IMAP IDLE on {s.folder!r}: {network_reason(exc)}") from None

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
        no_receipt = _no_receipt_reason(mail.headers)
        if no_receipt:  # read by routing.acknowledge: a complaint, but no receipt
            content.reply_ref["no_receipt"] = no_receipt
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


def _no_receipt_reason(headers: dict[str, str]) -> str | None:
    """Why a mail must get no automatic receipt, from its headers (RFC 3834 section 2).

    Auto-replies and Precedence bulk/list/junk never become complaints (`mailparse`); mail
    that came through a mailing list or newsletter still may, but answering it would write
    to the list."""
    for name in ("list-id", "list-unsubscribe", "list-post"):
        if headers.get(name):
            return f"mailing list ({name})"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"bulk mail (Precedence: {precedence})"
    return None


def _message_id(raw: bytes) -> str | None:
    m = re.search(rb"^message-id:[ \t]*<?([^\s<>]+)>?", headers_only(raw), re.I | re.M)
    return m.group(1).decode("ascii", "replace") if m else None


def _quiet_logout(box: Any) -> None:
    try:
        box.logout()
    except Exception:  # noqa: BLE001 - the connection is being dropped anyway
        with contextlib.suppress(Exception):
            box.client.shutdown()


_NEWS = re.compile(rb"^\* \d+ (EXISTS|RECENT)\b", re.I)
_BYE = re.compile(rb"^\* BYE\b", re.I)


class _ImapIdle(Watch):
    """A selected folder in IDLE, through imap-tools' `idle` (start / poll / stop)."""

    def __init__(self, box: MailBoxUnencrypted | MailBox) -> None:
        self.box = box
        self._idling = False  # between IDLE and DONE
        self._start()

    def _start(self) -> None:
        self._call(self.box.idle.start)
        self._idling = True

    def _call(self, step: Any) -> Any:
        try:
            return step()
        except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
            raise TransientError(f"IMAP IDLE: {network_reason(exc)}") from None

    @staticmethod
    def _news(lines: list[bytes]) -> bool:
        if any(_BYE.match(line) for line in lines):
            raise TransientError("IMAP IDLE: the server closed the connection (BYE)")
        return any(_NEWS.match(line) for line in lines)

    def wait(self, timeout: float) -> bool:
        started = time.monotonic()
        lines = self._call(lambda: self.box.idle.poll(timeout=timeout))
        if self._news(lines):
            return True
        if not lines and time.monotonic() - started < timeout / 2:
            # Woken with nothing to read: imap-tools reads a closed connection as no lines.
            # Re-issuing IDLE finds out (DONE on a dead connection fails).
            return self.renew()
        return False

    def renew(self) -> bool:
        self._idling = False
        _, lines = self._call(self.box.idle.stop)
        news = self._news([x for x in lines if isinstance(x, bytes)])
        self._start()
        return news

    def close(self) -> None:
        if self._idling:
            self._idling = False
            with contextlib.suppress(Exception):
                self.box.idle.stop()
        _quiet_logout(self.box)
