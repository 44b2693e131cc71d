"""A small OAuth2 provider on loopback, the tests' own server (like dovecot.py).

It speaks what Google's and Microsoft's endpoints speak, over real HTTP:
- ``POST /token``: ``grant_type=refresh_token`` (optionally rotating the refresh token) and
  ``grant_type=authorization_code`` with PKCE (S256) checked; RFC 6749 errors (``invalid_grant``,
  ``invalid_client``) as JSON with 400/401;
- ``GET /authorize``: the consent page, answered at once with a 302 to the redirect URI with
  ``code`` and ``state`` (the operator "consents" as ``login_hint``);
- ``POST /introspect`` (RFC 7662): what Dovecot's oauth2 passdb asks for each login.

Every POST is recorded (``posts``, form without the client secret), so a test can count token
requests. ``revoke_access_tokens()`` makes the provider forget the access tokens it issued (a
password change at the provider), ``revoke_refresh_token()`` a consent withdrawn.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = ["OAuth2Provider"]


class OAuth2Provider:
    def __init__(
        self,
        client_id: str = "lapakd-test",
        client_secret: str = "cs-rahasia-uji",
        *,
        rotate: bool = False,
        expires_in: int = 3600,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_tokens: dict[str, str] = {}  # token -> user
        self.issued: list[str] = []  # every token handed out (tests look for them in logs)
        self.rotate = rotate
        self.expires_in = expires_in
        self.access_tokens: dict[str, str] = {}
        self.codes: dict[str, dict[str, str]] = {}
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> OAuth2Provider:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> OAuth2Provider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.url}/introspect"

    # -- what tests do at the provider ------------------------------------

    def token_posts(self, grant_type: str | None = None) -> list[dict[str, str]]:
        with self.lock:
            return [p["form"] for p in self.posts if p["path"] == "/token"
                    and (grant_type is None or p["form"].get("grant_type") == grant_type)]

    def grant(self, user: str) -> str:
        """A refresh token for `user`, as a consent would give."""
        with self.lock:
            return self._new_refresh(user)

    def revoke_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    def valid(self, user: str, token: str) -> bool:
        """Whether `token` is a live access token of `user` (the SMTP sink's check)."""
        with self.lock:
            return self.access_tokens.get(token) == user

    # -- the endpoints -----------------------------------------------------

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != self.client_id or (
            form.get("client_secret", "") != self.client_secret
        ):
            return 401, {"error": "invalid_client", "error_description": "Unauthorized client"}
        grant = form.get("grant_type")
        with self.lock:
            if grant == "refresh_token":
                user = self.refresh_tokens.get(form.get("refresh_token", ""))
                if user is None:
                    return 400, {"error": "invalid_grant",
                                 "error_description": "Token has been expired or revoked."}
                answer = self._issue(user)
                if self.rotate:
                    del self.refresh_tokens[form["refresh_token"]]
                    answer["refresh_token"] = self._new_refresh(user)
                return 200, answer
            if grant == "authorization_code":
                request = self.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(
                    hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if (request is None or request["redirect_uri"] != form.get("redirect_uri")
                        or request["code_challenge"] != challenge):
                    return 400, {"error": "invalid_grant",
                                 "error_description": "Malformed auth code or PKCE mismatch."}
                answer = self._issue(request["user"])
                answer["refresh_token"] = self._new_refresh(request["user"])
                return 200, answer
        return 400, {"error": "unsupported_grant_type"}

    def _issue(self, user: str) -> dict[str, Any]:
        token = "at-" + secrets.token_hex(12)
        self.access_tokens[token] = user
        self.issued.append(token)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}

    def _new_refresh(self, user: str) -> str:
        token = "rt-" + secrets.token_hex(12)
        self.refresh_tokens[token] = user
        self.issued.append(token)
        return token

    def _authorize(self, query: dict[str, str]) -> str:
        """The consent: the redirect URL with a fresh code (or an error)."""
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or query.get("code_challenge_method") != "S256":
            return f"{redirect}?{urlencode({'error': 'invalid_request'})}"
        code = "code-" + secrets.token_hex(8)
        with self.lock:
            self.codes[code] = {"redirect_uri": redirect, "user": query.get("login_hint", ""),
                                "code_challenge": query.get("code_challenge", "")}
        return f"{redirect}?{urlencode({'code': code, 'state': query.get('state', '')})}"


def _handler(provider: OAuth2Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/authorize":
                return self._send(404, {})
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            self.send_response(302)
            self.send_header("Location", provider._authorize(query))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            path = urlsplit(self.path).path
            with provider.lock:
                provider.posts.append({"path": path, "form": {
                    k: v for k, v in form.items() if k != "client_secret"}})
            if path == "/token":
                return self._send(*provider._token(form))
            if path == "/introspect":
                with provider.lock:
                    user = provider.access_tokens.get(form.get("token", ""))
                return self._send(200, {"active": user is not None, "username": user or ""})
            self._send(404, {})

    return Handler
