"""CLI verb `oauth2-token`: get the first OAuth2 refresh token for the desk's mailbox (IMAP) or
its SMTP relay — the authorization-code flow with PKCE, the code pasted back by the operator, the
refresh token stored in data_dir/oauth2/<use>.json (0600). lapakd/mail/oauth2.py does the work."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lapakd.cli import _print_json, command

DEFAULT_REDIRECT = "http://localhost"


def add_verbs(sub: Any, common: argparse.ArgumentParser, actor: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "oauth2-token", parents=[common],
        help="get and store the OAuth2 refresh token for IMAP or SMTP (XOAUTH2)")
    p.add_argument("--for", dest="use", choices=("email", "smtp"),
                   help="which login: [channels.email] (IMAP) or [smtp]; default: the one "
                   "with auth = \"oauth2\" (email first)")
    p.add_argument("--redirect-uri", default=DEFAULT_REDIRECT,
                   help="the redirect URI registered for the OAuth client (default "
                   f"{DEFAULT_REDIRECT}; nothing needs to listen there)")


@command("oauth2-token")
def cmd_oauth2_token(args: argparse.Namespace) -> int:
    from lapakd.config import load_config
    from lapakd.errors import LapakdError
    from lapakd.mail import oauth2

    cfg = load_config(args.config)
    sections = {"email": cfg.channels.get("email"), "smtp": cfg.smtp}
    use = args.use or next(
        (u for u, s in sections.items() if s is not None and s.get("auth") == "oauth2"), None)
    if use is None:
        raise LapakdError(f"{cfg.path}: neither [channels.email] nor [smtp] has auth = "
                          "\"oauth2\" (set it and the oauth2_* keys first)")
    section = sections[use]
    name = oauth2.section_name(use)
    if section is None or section.get("auth") != "oauth2":
        raise LapakdError(f"{cfg.path}: [{name}] has no auth = \"oauth2\" (set it and the "
                          "oauth2_* keys first)")
    settings = oauth2.OAuth2Settings.from_section(use, section, cfg.data_dir)
    if not settings.authorization_url():
        raise LapakdError(f"{cfg.path}: {name}.oauth2_auth_url is empty and cannot be derived "
                          "from oauth2_token_url (give the provider's authorization endpoint)")
    auth = oauth2.begin_authorization(settings, args.redirect_uri)
    print(f"Open this URL in a browser and sign in as {settings.username or 'the desk account'}"
          f" ([{name}]):", file=sys.stderr)
    print(auth.url, flush=True)
    print(f"The browser is then sent to {args.redirect_uri}?code=... (the page may not load: "
          "that is fine). Paste that whole address, or just the code, here:", file=sys.stderr)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return 130
    try:
        code = oauth2.code_from_answer(answer, auth.state)
        path = oauth2.exchange_code(settings, auth, code)
    except oauth2.OAuth2Error as exc:
        raise LapakdError(f"oauth2-token: {exc}") from None
    retried = _retry_now(cfg, use)
    if args.json:
        _print_json({"use": use, "stored": str(path), "retry_now": retried})
    else:
        print(f"Stored the refresh token for [{name}] in {path} (0600); lapakd uses it from its "
              "next login.")
    return 0


def _retry_now(cfg: Any, use: str) -> int:
    """What waits for new credentials (the email channel after a refused token, SMTP sends
    deferred by one) is tried at the next tick instead of in an hour. How many waited."""
    from lapakd.store import Store, now_iso

    if not cfg.db_path.exists():
        return 0
    store = Store(cfg.data_dir)
    try:
        now = now_iso()
        with store.transaction() as conn:
            waited = conn.execute(
                "UPDATE channel_health SET next_try_at = ? WHERE channel = ?"
                " AND state = 'needs_reauth'", (now, "email" if use == "email" else "smtp"),
            ).rowcount
            if use == "smtp":
                waited += conn.execute(
                    "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'"
                    " AND transport = 'smtp' AND next_attempt_at > ? AND last_error LIKE ?",
                    (now, now, "%oauth2-token --for smtp%"),
                ).rowcount
        return waited
    finally:
        store.close()
