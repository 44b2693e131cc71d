"""OAuth2 for the desk's mail logins: XOAUTH2 over IMAP (`[channels.email]`) and SMTP (`[smtp]`).

With `auth = "oauth2"` a section's refresh token is traded for an access token at
`oauth2_token_url` (the standard `grant_type=refresh_token` POST), which is cached in memory until
EXPIRY_MARGIN seconds before its `expires_in` and shared by every login of that section in the
process. `login_with_token` logs in with the cached token and, when the server refuses it (revoked
at the provider), refreshes once and tries once more.

The refresh token comes from the config, or from `data_dir/oauth2/<use>.json` (0600) when the
provider rotated it in an answer or `lapakd oauth2-token` fetched it. The stored one remembers
(by sha256) which config token it replaces, and is dropped as soon as the admin puts a different
token in the config. The same file keeps the last token-endpoint failure (`error`), which
`lapakd status` shows until a refresh succeeds: failures kept as data.

Secrets (client secret, refresh and access tokens) never appear in a log line or an error: every
message made here is scrubbed of them. Imports nothing of lapakd above `errors`, so the IMAP
adapter and the SMTP delivery both use it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests
import structlog

from lapakd.errors import network_reason

log = structlog.get_logger("lapakd.mail.oauth2")

T = TypeVar("T")

# A cached access token is renewed this many seconds before the provider says it expires.
EXPIRY_MARGIN = 120
# When the answer has no expires_in (it is RECOMMENDED, not required): assume this.
DEFAULT_EXPIRES_IN = 3600
STATE_DIR = "oauth2"
USES = ("email", "smtp")  # which config section a token is for: its key in the state folder

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_SCOPE = "https://mail.google.com/"
MICROSOFT_SCOPES = {
    "email": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    "smtp": "https://outlook.office.com/SMTP.Send offline_access",
}
_MICROSOFT_TOKEN = re.compile(r"^(https://login\.microsoftonline\.com/[^/]+/oauth2/v2\.0)/token$")


class OAuth2Error(Exception):
    """The token endpoint did not give an access token. The message is one line for the admin
    (scrubbed of secrets). `needs_admin`: retrying will not help until the admin acts
    (`invalid_grant`: the consent was revoked; a wrong client; no refresh token at all)."""

    def __init__(self, message: str, needs_admin: bool = False) -> None:
        super().__init__(message)
        self.needs_admin = needs_admin


class LoginRefused(Exception):
    """Raised by a login attempt when the mail server refuses the access token."""


def section_name(use: str) -> str:
    return "channels.email" if use == "email" else "smtp"


def fix_hint(use: str) -> str:
    return f"run `lapakd oauth2-token --for {use}`"


@dataclass(frozen=True)
class OAuth2Settings:
    """One section's OAuth2 keys, as lapakd.toml gives them (secrets resolved)."""

    use: str  # "email" | "smtp"
    username: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    config_refresh_token: str = field(repr=False)
    scope: str
    auth_url: str
    data_dir: Path
    timeout: float = 30

    @classmethod
    def from_section(
        cls, use: str, section: Any, data_dir: Path | str, timeout: float | None = None
    ) -> OAuth2Settings:
        get = section.get
        return cls(
            use=use,
            username=get("username", "") or "",
            token_url=get("oauth2_token_url", "") or "",
            client_id=get("oauth2_client_id", "") or "",
            client_secret=get("oauth2_client_secret", "") or "",
            config_refresh_token=get("oauth2_refresh_token", "") or "",
            scope=get("oauth2_scope", "") or "",
            auth_url=get("oauth2_auth_url", "") or "",
            data_dir=Path(data_dir),
            timeout=float(timeout if timeout is not None else get("timeout_seconds", 30) or 30),
        )

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_DIR / f"{self.use}.json"

    def effective_scope(self) -> str:
        """The configured scope, else the provider's usual one for this use ("" if unknown)."""
        if self.scope:
            return self.scope
        if self.token_url == GOOGLE_TOKEN_URL:
            return GOOGLE_SCOPE
        if _MICROSOFT_TOKEN.match(self.token_url):
            return MICROSOFT_SCOPES[self.use]
        return ""

    def authorization_url(self) -> str:
        """Where the operator's browser asks for consent: `oauth2_auth_url`, else derived from
        a Google or Microsoft token URL ("" if neither)."""
        if self.auth_url:
            return self.auth_url
        if self.token_url == GOOGLE_TOKEN_URL:
            return GOOGLE_AUTH_URL
        m = _MICROSOFT_TOKEN.match(self.token_url)
        return f"{m.group(1)}/authorize" if m else ""

    def secrets(self) -> list[str]:
        return [s for s in (self.client_secret, self.config_refresh_token) if s]


def config_hash(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def xoauth2_string(username: str, access_token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as Google and Microsoft define it."""
    return f"user={username}\x01auth=Bearer {access_token}\x01\x01"


# -- the state file: data_dir/oauth2/<use>.json ----------------------------------------------


def read_state(path: Path) -> dict[str, Any]:
    """The stored state, {} when there is none or it is unreadable (a half-written file cannot
    exist: writes are atomic)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _private_folder(folder: Path) -> None:
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)


@contextlib.contextmanager
def exclusive(settings: OAuth2Settings) -> Iterator[None]:
    """One lapakd process at a time uses and replaces this use's refresh token (the daemon,
    the burst's sender, `run --once`, `oauth2-token`): with a provider that rotates tokens,
    two refreshes with the same token would end it for one of them, and a read-modify-write
    of the state file must not lose a rotated token."""
    folder = settings.state_path.parent
    _private_folder(folder)
    fd = os.open(folder / f"{settings.use}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write aside (0600, fsynced), then rename: a crash leaves the old or the new file.
    Callers hold `exclusive`."""
    folder = path.parent
    _private_folder(folder)
    tmp = folder / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(state), fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.replace(tmp, path)


def store_refresh_token(settings: OAuth2Settings, refresh_token: str, source: str) -> Path:
    """Keep a refresh token (rotated by the provider, or from `lapakd oauth2-token`) in place of
    the config's current one; returns the file. The caller holds `exclusive`."""
    state = read_state(settings.state_path)
    state.update({
        "refresh_token": refresh_token,
        "replaces": config_hash(settings.config_refresh_token),
        "source": source,
        "stored_at": _now(),
        "error": None,
        "error_at": None,
    })
    write_state(settings.state_path, state)
    return settings.state_path


def current_refresh_token(settings: OAuth2Settings) -> tuple[str, str]:
    """(refresh token, where it came from: "config" | "stored"). The stored one wins while it
    replaces exactly the token the config has now; a new config token drops it."""
    state = read_state(settings.state_path)
    stored = state.get("refresh_token")
    if stored and state.get("replaces") == config_hash(settings.config_refresh_token):
        return str(stored), "stored"
    return settings.config_refresh_token, "config"


def problem(settings: OAuth2Settings) -> str | None:
    """The last token-endpoint failure still standing (for `lapakd status`), or None."""
    state = read_state(settings.state_path)
    error = state.get("error")
    if not error:
        return None
    return f"{error} (since {state.get('error_at')})"


# -- the token endpoint ------------------------------------------------------------------------


def token_request(
    settings: OAuth2Settings, form: dict[str, str], hidden: list[str]
) -> dict[str, Any]:
    """POST `form` (plus client_id/secret) to the token URL; the answer's JSON. Raises
    OAuth2Error, scrubbed of the secrets in `hidden`."""
    where = f"OAuth2 token endpoint {urllib.parse.urlsplit(settings.token_url).netloc}"
    body = {**form, "client_id": settings.client_id}
    if settings.client_secret:
        body["client_secret"] = settings.client_secret
    hidden = [*hidden, *settings.secrets()]
    try:
        answer = requests.post(
            settings.token_url, data=body, timeout=settings.timeout,
            headers={"Accept": "application/json"},
        )
    except requests.RequestException as exc:
        raise OAuth2Error(_scrub(f"{where} unreachable: {network_reason(exc)}", hidden)) from None
    try:
        data = answer.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise OAuth2Error(_scrub(
            f"{where} answered HTTP {answer.status_code} without a JSON object", hidden))
    if answer.status_code >= 400 or "error" in data:
        code = str(data.get("error") or f"HTTP {answer.status_code}")
        text = str(data.get("error_description") or "").strip()
        said = f" ({text[:80]})" if text else ""
        needs_admin = answer.status_code < 500
        if code == "invalid_grant":
            fix = f"consent revoked or token expired; {fix_hint(settings.use)}"
        elif code in ("invalid_client", "unauthorized_client"):
            fix = (f"check {section_name(settings.use)}.oauth2_client_id and "
                   "oauth2_client_secret")
        elif needs_admin:
            fix = f"check the {section_name(settings.use)}.oauth2_* keys"
        else:
            fix = "lapakd retries"
        raise OAuth2Error(_scrub(f"{where}: {code}, {fix}{said}", hidden), needs_admin)
    return data


@dataclass
class _Cached:
    token: str
    expires_at: float  # time.monotonic()


class TokenSource:
    """One section's access tokens: cached until shortly before they expire, refreshed with
    the current refresh token (thread-safe: the poll worker, the IDLE connection and the
    sender may ask at once)."""

    def __init__(self, settings: OAuth2Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._cached: _Cached | None = None

    def access_token(self) -> tuple[str, bool]:
        """(access token, whether it was fetched just now). Raises OAuth2Error."""
        with self._lock:
            cached = self._cached
            if cached is not None and time.monotonic() < cached.expires_at:
                return cached.token, False
            return self._refresh(), True

    def invalidate(self, token: str) -> None:
        """The server refused `token`: the next `access_token` fetches a new one."""
        with self._lock:
            if self._cached is not None and self._cached.token == token:
                self._cached = None

    def _refresh(self) -> str:
        with exclusive(self.settings):
            return self._refresh_exclusively()

    def _refresh_exclusively(self) -> str:
        s = self.settings
        refresh_token, origin = current_refresh_token(s)
        if not refresh_token:
            raise self._failed(OAuth2Error(
                f"OAuth2 for {section_name(s.use)}: no refresh token (set "
                f"{section_name(s.use)}.oauth2_refresh_token, or {fix_hint(s.use)})",
                needs_admin=True))
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        scope = s.effective_scope()
        if scope:
            form["scope"] = scope
        try:
            data = token_request(s, form, [refresh_token])
        except OAuth2Error as exc:
            raise self._failed(exc) from None
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._failed(OAuth2Error(
                f"OAuth2 token endpoint {s.token_url} answered without an access_token"))
        try:
            expires_in = float(data.get("expires_in", DEFAULT_EXPIRES_IN))
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        lifetime = max(0.0, expires_in - min(EXPIRY_MARGIN, expires_in / 2))
        self._cached = _Cached(token, time.monotonic() + lifetime)
        rotated = data.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != refresh_token:
            path = store_refresh_token(s, rotated, "rotated")
            log.info("oauth2.refresh_token_rotated", use=s.use, stored=str(path),
                     replaced=origin)
        else:
            self._clear_error()
        log.info("oauth2.access_token", use=s.use, expires_in=int(expires_in),
                 refresh_token=origin)
        return token

    def _failed(self, exc: OAuth2Error) -> OAuth2Error:
        """Keep the failure as data (`lapakd status` shows it) and log it once per change."""
        path = self.settings.state_path
        state = read_state(path)
        message = str(exc)
        if state.get("error") != message:
            log.error("oauth2.token_failed", use=self.settings.use, error=message)
            state.update({"error": message, "error_at": _now()})
            with contextlib.suppress(OSError):
                write_state(path, state)
        return exc

    def _clear_error(self) -> None:
        path = self.settings.state_path
        state = read_state(path)
        if state.get("error"):
            log.info("oauth2.token_recovered", use=self.settings.use)
            state.update({"error": None, "error_at": None})
            with contextlib.suppress(OSError):
                write_state(path, state)


_SOURCES: dict[tuple[Any, ...], TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def token_source(settings: OAuth2Settings) -> TokenSource:
    """The process's one TokenSource for these settings, so its cache outlives a connection
    (and an adapter rebuilt on reload with the same keys)."""
    key = (settings.use, settings.token_url, settings.client_id, settings.scope,
           str(settings.data_dir), config_hash(settings.client_secret),
           config_hash(settings.config_refresh_token))
    with _SOURCES_LOCK:
        source = _SOURCES.get(key)
        if source is None:
            source = _SOURCES[key] = TokenSource(settings)
        return source


def login_with_token(source: TokenSource, attempt: Callable[[str], T]) -> T:
    """`attempt(access_token)` logs in (raising LoginRefused when the server refuses the
    token); a refused cached token is dropped, a new one fetched, and the login tried once
    more. OAuth2Error when no token can be had; LoginRefused when a fresh one is refused."""
    token, fresh = source.access_token()
    try:
        return attempt(token)
    except LoginRefused:
        if fresh:
            raise
        log.info("oauth2.token_refused", use=source.settings.use,
                 note="refreshing once and retrying")
    source.invalidate(token)
    token, _ = source.access_token()
    return attempt(token)


# -- the first refresh token: `lapakd oauth2-token` ------------------------------------------


@dataclass(frozen=True)
class Authorization:
    """An authorization-code request with PKCE (RFC 7636): the URL for the browser and what
    the exchange needs."""

    url: str
    redirect_uri: str
    state: str
    verifier: str = field(repr=False)


def begin_authorization(settings: OAuth2Settings, redirect_uri: str) -> Authorization:
    auth_url = settings.authorization_url()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    query = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
        "state": state,
        # Ask for a refresh token: Google gives one only with offline access and consent.
        "access_type": "offline",
        "prompt": "consent",
    }
    scope = settings.effective_scope()
    if scope:
        query["scope"] = scope
    if settings.username:
        query["login_hint"] = settings.username
    sep = "&" if "?" in auth_url else "?"
    return Authorization(f"{auth_url}{sep}{urllib.parse.urlencode(query)}", redirect_uri,
                         state, verifier)


def code_from_answer(answer: str, expected_state: str) -> str:
    """The authorization code from what the operator pasted: the code itself, or the whole
    URL the browser was redirected to (its `state` must match). Raises OAuth2Error."""
    text = answer.strip()
    if not text:
        raise OAuth2Error("no code given (paste the code, or the whole URL the browser "
                          "was sent to)")
    if "://" in text or text.startswith(("?", "/")) or "code=" in text:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(text).query or text.lstrip("?"))
        if "error" in query:
            raise OAuth2Error(f"the provider answered {query['error'][0]}: "
                              f"{query.get('error_description', [''])[0][:200]}")
        if "code" not in query:
            raise OAuth2Error("the pasted URL has no code= in it")
        if query.get("state", [expected_state])[0] != expected_state:
            raise OAuth2Error("the pasted URL's state does not match this request "
                              "(paste the URL of this run's consent)")
        return query["code"][0]
    return text


def exchange_code(settings: OAuth2Settings, auth: Authorization, code: str) -> Path:
    """Trade the code for tokens and store the refresh token (0600); returns the file."""
    data = token_request(settings, {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": auth.redirect_uri,
        "code_verifier": auth.verifier,
    }, [code, auth.verifier])
    refresh_token = data.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise OAuth2Error(
            f"OAuth2 token endpoint {settings.token_url} gave no refresh_token (Google: the "
            "consent screen must ask for offline access; Microsoft: add the offline_access "
            "scope)", needs_admin=True)
    with exclusive(settings):
        return store_refresh_token(settings, refresh_token, "oauth2-token")


def _scrub(text: str, hidden: list[str]) -> str:
    for secret in sorted({h for h in hidden if h}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return " ".join(text.split())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
