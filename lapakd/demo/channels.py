"""The demo's channels: for each, a local server, its lapakd.toml section and its deliveries.

Adding a channel to the demo (X, Facebook, WhatsApp through a local replica of their API): write
one function ``<name>_channel(stack) -> DemoChannel`` that starts the replica, says how lapakd
reaches it (its ``[channels.<name>]`` section) and how to deliver its sample messages (kept in
``samples/``), and what the citizens got back (``replies``); then add it to ``CHANNELS``.
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lapakd.config import load_config
from lapakd.demo.desk import DESK_EMAIL, DESK_PASSWORD, DemoError
from lapakd.demo.samples import Sample, channel_samples, email_samples, sample_file
from lapakd.embedded.imap import EmbeddedImap
from lapakd.embedded.replica import graph
from lapakd.embedded.replica.x import XReplica, minutes_ago
from lapakd.intake.webhook import PATH, WebhookServer


@dataclass
class DemoChannel:
    name: str  # the lapakd channel: [channels.<name>]
    settings: dict[str, Any]  # that section of lapakd.toml
    servers: dict[str, str]  # what runs for it, shown to the user: {"IMAP": "127.0.0.1:40123"}
    deliver: Callable[[], list[Sample]]  # put the samples where lapakd will fetch them
    login: str = ""  # how a person could look at the server themselves (--keep-running)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)  # more of lapakd.toml
    # Started once lapakd.toml is written, before deliver(): what serves lapakd's own config
    # (the webhook).
    serve: Callable[[Path], None] | None = None
    # What the citizens received on this channel's server: [(recipient, text)], oldest first.
    replies: Callable[[], list[tuple[str, str]]] | None = None


def email_channel(stack: contextlib.ExitStack) -> DemoChannel:
    imap = stack.enter_context(EmbeddedImap(DESK_EMAIL, DESK_PASSWORD))

    def deliver() -> list[Sample]:
        samples = email_samples()
        # IMAP APPEND over the socket: what a mail server's delivery does, with any backend.
        client = imaplib.IMAP4(imap.host, imap.port, timeout=30)
        # APPEND waits for the server's "+" before the message: without NODELAY, Nagle's
        # algorithm and delayed ACKs cost ~50 ms per message.
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            client.login(DESK_EMAIL, DESK_PASSWORD)
            for sample in samples:
                typ, data = client.append("INBOX", "", imaplib.Time2Internaldate(time.time()),
                                          sample.raw)
                if typ != "OK":
                    raise DemoError(f"IMAP APPEND of {sample.label!r} failed: {data!r}")
        finally:
            with contextlib.suppress(Exception):
                client.logout()
        return samples

    return DemoChannel(
        name="email",
        settings={
            "enabled": True,
            "host": imap.host,
            "port": imap.port,
            "security": "none",
            "username": DESK_EMAIL,
            "password": DESK_PASSWORD,
            "folder": "INBOX",
            "after": "seen",
            "poll_seconds": 10,
        },
        servers={"IMAP": f"{imap.host}:{imap.port}"},
        deliver=deliver,
        login=f"{DESK_EMAIL} / {DESK_PASSWORD}",
    )


def twitter_channel(stack: contextlib.ExitStack) -> DemoChannel:
    """X: mentions of and DMs to @lapakaduanbms, from a local replica of the X API v2
    (lapakd's real tweepy client talks HTTP to it; replies and DMs land in the replica)."""

    x = stack.enter_context(XReplica())

    def deliver() -> list[Sample]:
        data = channel_samples("twitter")
        mention, rt = data["mention"], data["retweet"]
        post = x.add_mention(mention["text"], mention["author"],
                             photos=[sample_file(name) for name in mention["photos"]],
                             created_at=minutes_ago(mention["minutes_ago"]))
        retweet = x.add_mention("", rt["author"], retweet_of=post)
        # the retweet first: its raw names the post too, samples match in order
        samples = [Sample(rt["label"], retweet, retweet.encode(), complaint=False),
                   Sample(mention["label"], post, post.encode())]
        # DMs from one citizen within the chat window: one complaint.
        for dm in data["dms"]:
            dm_id = x.add_dm(dm["text"], dm["author"], created_at=minutes_ago(dm["minutes_ago"]))
            samples.append(Sample(dm["label"], dm_id, dm_id.encode()))
        return samples

    def replies() -> list[tuple[str, str]]:
        out = []
        with x.lock:
            for post in x.posted:
                if post["status"] != 201:
                    continue
                if post["endpoint"] == "create_tweet" and post.get("in_reply_to"):
                    author = x.tweets[post["in_reply_to"]]["author_id"]
                    out.append((f"@{x.users[author]['username']} (reply)", post["body"]["text"]))
                elif post["endpoint"] == "create_dm":
                    user = x.users[post["participant_id"]]["username"]
                    out.append((f"@{user} (DM)", post["body"]["text"]))
        return out

    return DemoChannel(
        name="twitter",
        settings=x.channel_config(poll_seconds=30),
        servers={"X API": x.url.removeprefix("http://")},
        deliver=deliver,
        replies=replies,
    )


def facebook_channel(stack: contextlib.ExitStack) -> DemoChannel:
    """Facebook: a Messenger chat with the desk's Page, polled by lapakd (its real facebook-sdk
    client) from a local replica of the Graph API; the acknowledgement is posted back to it."""

    replica = stack.enter_context(graph.GraphReplica())
    data = channel_samples("facebook")
    people = {data["psid"]: data["name"]}  # page-scoped id → name

    def deliver() -> list[Sample]:
        # Short messages, the way people chat: together they are one complaint.
        samples = []
        for message in data["chat"]:
            mid = replica.messenger_message(data["psid"], data["name"], message["text"],
                                            when=minutes_ago(message["minutes_ago"]))
            samples.append(Sample(message["label"], mid, mid.encode()))
        return samples

    def replies() -> list[tuple[str, str]]:
        with replica.lock:
            return [(f"{people.get(p['recipient']['id'], p['recipient']['id'])} (Messenger)",
                     p["message"]["text"]) for p in replica.posted if "recipient" in p]

    return DemoChannel(
        name="facebook",
        settings={"enabled": True, "page_id": graph.PAGE_ID, "access_token": graph.TOKEN,
                  "graph_url": replica.url, "poll_seconds": 30},
        servers={"Graph API": replica.url.removeprefix("http://")},
        deliver=deliver,
        replies=replies,
    )


def whatsapp_channel(stack: contextlib.ExitStack) -> DemoChannel:
    """WhatsApp: Meta pushes each message to lapakd's /webhook, signed with the app secret. The
    demo serves lapakd's real webhook (waitress, from the demo's lapakd.toml) and posts a message
    to it signed like Meta; the acknowledgement goes to a local replica of the Cloud API."""

    replica = stack.enter_context(graph.GraphReplica())
    settings = {"enabled": True, "phone_number_id": graph.PHONE_NUMBER_ID,
                "access_token": graph.TOKEN, "app_secret": graph.APP_SECRET,
                "verify_token": graph.VERIFY_TOKEN, "graph_url": replica.url}
    # The webhook's port is known once it starts (serve); it is where the messages arrive.
    servers = {"webhook": "", "Graph API": replica.url.removeprefix("http://")}
    webhook: dict[str, str] = {}

    def serve(config_path: Path) -> None:

        server = WebhookServer(load_config(config_path)).start()
        stack.callback(server.stop)
        webhook["url"] = f"http://{server.config_listen}{PATH}"
        servers["webhook"] = f"{server.config_listen}{PATH}"

    def deliver() -> list[Sample]:
        sample = channel_samples("whatsapp")
        wamid = replica.wamid()
        body = replica.whatsapp_text_body(sample["phone"], sample["name"], sample["text"],
                                          wamid=wamid, when=minutes_ago(sample["minutes_ago"]))
        status, answer = graph.send_webhook(webhook["url"], body, settings["app_secret"])
        if status != 200:
            raise DemoError(f"the webhook refused the WhatsApp message: {status} {answer[:200]!r}")
        return [Sample(sample["label"], wamid, wamid.encode())]

    def replies() -> list[tuple[str, str]]:
        with replica.lock:
            return [(f"+{p['to']}", p["text"]["body"]) for p in replica.posted if "to" in p]

    return DemoChannel(
        name="whatsapp",
        settings=settings,
        servers=servers,
        deliver=deliver,
        sections={"webhook": {"listen": "127.0.0.1:0"}},  # a free port, chosen when it starts
        serve=serve,
        replies=replies,
    )


# One function per channel; each starts its servers on `stack` (stopped when the demo ends).
CHANNELS: list[Callable[[contextlib.ExitStack], DemoChannel]] = [
    email_channel, twitter_channel, facebook_channel, whatsapp_channel,
]
