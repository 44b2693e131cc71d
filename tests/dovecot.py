"""A real Dovecot IMAP server on loopback, run from a temporary directory.

Nothing under /etc/dovecot is used or touched: the server gets its own config
(``<workdir>/dovecot.conf``), log (``<workdir>/dovecot.log``) and self-signed
certificate, and is run as ``dovecot -F -c <workdir>/dovecot.conf``::

    dc = Dovecot(tmp_path)
    dc.start()
    user = dc.new_user()                 # fresh, empty mailbox; password dc.password
    dc.append(user, b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
    MailBox(dc.host, dc.port).login(user, dc.password)   # plain port (STARTTLS offered)
    MailBox(dc.host, dc.ssl_port, ssl_context=...)       # implicit TLS, trust dc.cafile
    dc.stop()

With ``oauth2_introspection_url`` the server also takes ``AUTHENTICATE XOAUTH2`` /
``OAUTHBEARER``, checking each bearer token at that URL (Dovecot's ``oauth2`` passdb, RFC 7662
introspection by POST; tests/oauth2_provider.py serves it); password logins still work for the
test helpers below.

Every user name logs in with the password ``secret`` (static passdb) and gets
its own home ``<runtime>/home/<user>`` (static userdb), so each test can use a
fresh user instead of reconfiguring the server.  The hierarchy separator is
``/``.

The runtime files (base_dir sockets, state_dir, the users' homes) live in a
short-named directory under the system temp dir, not in *workdir*: unix socket
paths have a length limit, and the mail processes run as an unprivileged uid
that cannot enter pytest's 0700 ``/tmp/pytest-of-<user>`` tree.
``<workdir>/runtime`` is a symlink to it while the server runs.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import grp
import imaplib
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from certs import make_self_signed_cert

__all__ = ["Dovecot"]

_INSTALL_HINT = "dovecot not installed: apt-get install dovecot-imapd"


def _find_dovecot() -> str:
    for candidate in (shutil.which("dovecot"), "/usr/sbin/dovecot"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(_INSTALL_HINT)


def _free_ports(n: int, host: str) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # If the test process dies without stop(), take dovecot down with it.
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def imap_utf7(name: str) -> str:
    """Encode a mailbox name in IMAP modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            b64 = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + b64.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _mailbox_arg(folder: str) -> str:
    encoded = imap_utf7(folder)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(typ: str, data: list, what: str) -> list:
    if typ != "OK":
        raise RuntimeError(f"IMAP {what} failed: {typ} {data!r}")
    return data


class Dovecot:
    """Dovecot IMAP server on 127.0.0.1 with a plain (STARTTLS) and an imaps port."""

    password: str = "secret"

    def __init__(
        self,
        workdir: Path | str,
        *,
        domain: str = "lapak.test",
        oauth2_introspection_url: str | None = None,
    ):
        self.workdir = Path(workdir)
        self.domain = domain
        self.oauth2_introspection_url = oauth2_introspection_url
        self.host = "127.0.0.1"
        self.port = 0
        self.ssl_port = 0
        self.cafile = ""  # the server's self-signed certificate (set by start())
        self.certfile = ""
        self.keyfile = ""
        self.log_path = self.workdir / "dovecot.log"
        self.config_path = self.workdir / "dovecot.conf"
        self.startup_seconds: float | None = None
        self._runtime: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 15) -> None:
        if self._proc is not None:
            raise RuntimeError("Dovecot already started")
        binary = _find_dovecot()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.certfile, self.keyfile = make_self_signed_cert(self.workdir / "tls", "dovecot")
        self.cafile = self.certfile
        t0 = time.monotonic()
        last_error: Exception | None = None
        for _attempt in range(3):  # retry: another process may grab a port we picked
            self.port, self.ssl_port = _free_ports(2, self.host)
            try:
                self._start_once(binary, timeout)
            except _PortInUse as exc:
                last_error = exc
                continue
            self.startup_seconds = time.monotonic() - t0
            atexit.register(self.stop)
            return
        raise RuntimeError(f"dovecot could not bind its ports: {last_error}")

    def _start_once(self, binary: str, timeout: float) -> None:
        self._runtime = Path(tempfile.mkdtemp(prefix="lapakd-dovecot-"))
        self._runtime.chmod(0o755)
        uid, gid, login_user, internal_user = self._identities()
        home = self._runtime / "home"
        home.mkdir()
        os.chown(home, uid, gid)
        link = self.workdir / "runtime"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        with contextlib.suppress(OSError):
            link.symlink_to(self._runtime)
        if self.oauth2_introspection_url:
            # In the runtime folder: Dovecot's auth process (not root) reads it.
            (self._runtime / "oauth2.conf.ext").write_text(
                "introspection_mode = post\n"
                f"introspection_url = {self.oauth2_introspection_url}\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n"
                "force_introspection = yes\n"
            )
        self.config_path.write_text(self._config(uid, gid, login_user, internal_user, home))
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()
        stderr_path = self.workdir / "dovecot.stderr"
        with open(stderr_path, "wb") as err:
            self._proc = subprocess.Popen(
                [binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self._terminate()
            raise

    def _identities(self) -> tuple[int, int, str, str]:
        """(mail uid, mail gid, default_login_user, default_internal_user)."""
        if os.geteuid() != 0:  # rootless: everything runs as the current user
            me = pwd.getpwuid(os.geteuid())
            return me.pw_uid, me.pw_gid, me.pw_name, me.pw_name
        try:
            mail = pwd.getpwnam("dovecot")
            pwd.getpwnam("dovenull")
        except KeyError as exc:
            raise RuntimeError(f"{_INSTALL_HINT} (missing system user: {exc})") from None
        return mail.pw_uid, mail.pw_gid, "dovenull", "dovecot"

    def _config(self, uid: int, gid: int, login_user: str, internal_user: str, home: Path) -> str:
        assert self._runtime is not None
        rootless = os.geteuid() != 0
        no_chroot = "  chroot =\n" if rootless else ""
        internal_group = grp.getgrgid(gid).gr_name if rootless else internal_user
        mechanisms, oauth2_passdb, password_mechanisms = "plain login", "", ""
        if self.oauth2_introspection_url:
            mechanisms += " xoauth2 oauthbearer"
            oauth2_passdb = (
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {self._runtime}/oauth2.conf.ext\n}}\n"
            )
            password_mechanisms = "  mechanisms = plain login\n"
        return f"""\
# Generated by tests/dovecot.py — a throwaway test server.
instance_name = lapakd-test-{self.port}
base_dir = {self._runtime}/run
state_dir = {self._runtime}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = imap
listen = {self.host}
shutdown_clients = yes

default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = {uid}
last_valid_uid = 0
first_valid_gid = 1

disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
auth_verbose = yes
{oauth2_passdb}passdb {{
  driver = static
  args = password={self.password}
{password_mechanisms}}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/%u
}}

mail_location = maildir:~/Maildir
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Archive {{
    special_use = \\Archive
  }}
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}

ssl = yes
ssl_cert = <{self.certfile}
ssl_key = <{self.keyfile}
ssl_min_protocol = TLSv1.2
stats_writer_socket_path =

service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.ssl_port}
    ssl = yes
  }}
{no_chroot}}}
service anvil {{
{no_chroot}}}
"""

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                detail = self._log_tail()
                if "Address already in use" in detail:
                    raise _PortInUse(detail)
                raise RuntimeError(f"dovecot exited with status {self._proc.returncode}:\n{detail}")
            if self._greets():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"dovecot did not accept IMAP connections on {self.host}:{self.port} "
                    f"within {timeout}s:\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as s:
                if not s.recv(200).startswith(b"* OK"):
                    return False
            ctx = ssl.create_default_context(cafile=self.cafile)
            with (
                socket.create_connection((self.host, self.ssl_port), timeout=2) as raw,
                ctx.wrap_socket(raw, server_hostname=self.host) as s,
            ):
                return s.recv(200).startswith(b"* OK")
        except OSError:
            return False

    def _log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.workdir / "dovecot.stderr", self.log_path):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                continue
            if text:
                parts.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(dovecot wrote no log)"

    def stop(self) -> None:
        atexit.unregister(self.stop)
        self._terminate()

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            shutil.rmtree(runtime, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.workdir / "runtime").unlink()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Dovecot {self.host}:{self.port} imaps={self.ssl_port} running={self.running}>"

    # -- users and mailboxes (test helpers, plain imaplib) -------------------

    def new_user(self, prefix: str = "user") -> str:
        """A user name never used before on this server, e.g. ``user7@lapak.test``."""
        with self._lock:
            n = next(self._counter)
        return f"{prefix}{n}@{self.domain}"

    @contextlib.contextmanager
    def imap(self, user: str) -> Iterator[imaplib.IMAP4]:
        """An imaplib connection logged in as *user* (plain port)."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            _check(*conn.login(user, self.password), "LOGIN")
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def append(
        self,
        user: str,
        raw: bytes,
        folder: str = "INBOX",
        flags: Iterable[str] = (),
        date: float | None = None,
    ) -> int | None:
        """APPEND *raw* to *folder* (created if missing); return the new UID.

        *flags* like ``("\\\\Seen", "$Forwarded")``; *date* (epoch seconds) sets
        the INTERNALDATE, default now.
        """
        flag_arg = "(" + " ".join(flags) + ")" if flags else None
        date_arg = imaplib.Time2Internaldate(date) if date is not None else None
        with self.imap(user) as conn:
            typ, data = conn.append(_mailbox_arg(folder), flag_arg, date_arg, raw)
            if typ != "OK" and b"TRYCREATE" in b"".join(d for d in data if d):
                _check(*conn.create(_mailbox_arg(folder)), f"CREATE {folder}")
                typ, data = conn.append(_mailbox_arg(folder), flag_arg, date_arg, raw)
            _check(typ, data, f"APPEND {folder}")
        m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        return int(m.group(1)) if m else None

    def folder_uids(self, user: str, folder: str = "INBOX") -> list[int]:
        with self.imap(user) as conn:
            _check(*conn.select(_mailbox_arg(folder), readonly=True), f"EXAMINE {folder}")
            data = _check(*conn.uid("SEARCH", "ALL"), "UID SEARCH")
        return sorted(int(x) for x in (data[0] or b"").split())

    def flags(self, user: str, uid: int, folder: str = "INBOX") -> set[str]:
        with self.imap(user) as conn:
            _check(*conn.select(_mailbox_arg(folder), readonly=True), f"EXAMINE {folder}")
            data = _check(*conn.uid("FETCH", str(uid), "(FLAGS)"), "UID FETCH")
        for item in data:
            if isinstance(item, bytes) and b"FLAGS" in item:
                flags = {f.decode() for f in imaplib.ParseFlags(item)}
                return flags - {"\\Recent"}  # per-session, not a stored flag
        raise KeyError(f"no message with UID {uid} in {folder!r} of {user}")

    def add_flags(self, user: str, uid: int, flags: Iterable[str], folder: str = "INBOX") -> None:
        with self.imap(user) as conn:
            _check(*conn.select(_mailbox_arg(folder)), f"SELECT {folder}")
            _check(*conn.uid("STORE", str(uid), "+FLAGS", "(" + " ".join(flags) + ")"), "STORE")

    def fetch(self, user: str, uid: int, folder: str = "INBOX") -> bytes:
        """The raw message (BODY.PEEK[], so \\Seen is not set)."""
        with self.imap(user) as conn:
            _check(*conn.select(_mailbox_arg(folder), readonly=True), f"EXAMINE {folder}")
            data = _check(*conn.uid("FETCH", str(uid), "(BODY.PEEK[])"), "UID FETCH")
        for item in data:
            if isinstance(item, tuple):
                return item[1]
        raise KeyError(f"no message with UID {uid} in {folder!r} of {user}")

    def create_folder(self, user: str, folder: str) -> None:
        with self.imap(user) as conn:
            _check(*conn.create(_mailbox_arg(folder)), f"CREATE {folder}")

    def delete_folder(self, user: str, folder: str) -> None:
        """Delete *folder*; re-creating it afterwards gives it a new UIDVALIDITY."""
        with self.imap(user) as conn:
            _check(*conn.delete(_mailbox_arg(folder)), f"DELETE {folder}")

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.imap(user) as conn:
            data = _check(*conn.status(_mailbox_arg(folder), "(UIDVALIDITY)"), "STATUS")
        m = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        if not m:
            raise RuntimeError(f"no UIDVALIDITY in {data!r}")
        return int(m.group(1))


class _PortInUse(RuntimeError):
    pass
