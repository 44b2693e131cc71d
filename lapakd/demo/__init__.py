"""`lapakd demo`: the whole desk on this machine, with no account and no network.

This module is also the shortest complete picture of how lapakd is wired:

1. Every channel gets a local server: for email an IMAP server (pymap's in-memory backend) in a
   thread of this process. The agencies' mail servers are one SMTP sink that keeps what it
   receives as .eml files in ``<dir>/outbox-mail/``.
2. ``<dir>/lapakd.toml`` is written pointing at those servers, with the project's default rules.
3. Citizens' messages are delivered to the channel servers the way the real world would (for
   email: IMAP APPEND of complete RFC 5322 mails; for WhatsApp, which only pushes: a webhook
   POST signed like Meta signs it, to lapakd's own ``/webhook`` served from that lapakd.toml).
4. ``lapakd.daemon.run_once`` does what the daemon does: poll, process, route, send.
5. The result is read back from the store: what ``lapakd list`` / ``show`` would show.

Adding a channel to the demo (X, Facebook, WhatsApp through a local replica of their API): write
one function ``<name>_channel(stack) -> DemoChannel`` that starts the replica, says how lapakd
reaches it (its ``[channels.<name>]`` section) and how to deliver its sample messages, and what
the citizens got back (``replies``); then add it to ``CHANNELS``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.policy
import imaplib
import importlib.resources
import json
import shutil
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from argparse import Namespace
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo

import lapakd
from lapakd import log as logsetup
from lapakd.config import dump_toml
from lapakd.embedded.smtp_sink import SmtpSink
from lapakd.errors import LapakdError, RulesError

if TYPE_CHECKING:
    from lapakd.app import Desk

DESK_EMAIL = "aduan@lapak.test"  # the desk's mailbox: IMAP login, and From of every forward
DESK_PASSWORD = "demo-lapak-aduan"  # demo only: the IMAP server lives and dies with this process
ADMIN_EMAIL = "admin@lapak.test"  # receives triage notes and alerts
MARKER = ".lapakd-demo"  # says "lapakd demo made this folder": only then is it cleaned
OUTBOX_MAIL = "outbox-mail"  # what the agencies received, one .eml per email
WIB = ZoneInfo("Asia/Jakarta")


class DemoError(Exception):
    """The demo cannot go on; the message is the one line the user sees."""


# -- the email channel: an IMAP server in this process ---------------------------------------


class EmbeddedImap:
    """A real IMAP server on a loopback port: pymap's in-memory ``dict`` backend, one user.

    pymap is asyncio-based; it gets its own event loop in a daemon thread so that the rest of
    the demo (and lapakd, which is synchronous) runs unchanged in the main thread. We bind the
    listening socket ourselves (port 0), so the port is free and nobody can take it first.
    """

    def __init__(self, user: str, password: str, host: str = "127.0.0.1") -> None:
        self.user, self.password, self.host = user, password, host
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers = contextlib.AsyncExitStack()

    def start(self) -> None:
        sock = socket.create_server((self.host, 0))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="demo-imap", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(timeout=30)
        except BaseException:
            sock.close()
            self.stop()
            raise

    async def _serve(self, sock: socket.socket) -> None:
        # Imported here: pymap is only needed by the demo, not by the daemon.
        from proxyprotocol.reader import ProxyProtocolReader
        from pymap.backend.dict import Config, Login
        from pymap.concurrent import Subsystem
        from pymap.imap import IMAPServer
        from pymap.user import Passwords, UserMetadata
        from pysasl.hashing import Cleartext

        class DemoConfig(Config):
            @property
            def greeting(self) -> bytes:  # the default asks DNS for our host name
                return b"lapakd demo IMAP ready"

        config = DemoConfig(
            # pymap's config is normally built from its command line; these are the two
            # arguments it still reads from there.
            Namespace(passlib_cfg=None, proxy_protocol=None),
            host=self.host,
            port=self.port,
            demo_data=False,  # pymap's own sample mailbox: not ours
            demo_user=self.user,
            demo_password=self.password,
            tls_enabled=False,  # loopback only; lapakd connects with security = "none"
            reject_dnsbl=False,
            invalid_user_sleep=0.0,
            # The password is in lapakd.toml anyway; pymap's default hash (500,000 rounds of
            # PBKDF2) would only add a second to every login.
            hash_context=Cleartext(),
            cpu_subsystem=Subsystem.for_asyncio(),  # no thread pool for password checks
        )
        config.apply_context()
        login = Login(config)
        hashed = await Passwords(config).hash_password(self.password)
        await login.demo_user_identity.set(UserMetadata(config, self.user, password=hashed))
        handler = ProxyProtocolReader(config.proxy_protocol).get_callback(
            IMAPServer(login, config)
        )
        server = await asyncio.start_server(handler, sock=sock)
        await self._servers.enter_async_context(server)  # closed again by stop()
        await server.start_serving()

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._servers.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if not loop.is_running():
            loop.close()

    def __enter__(self) -> EmbeddedImap:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- channels -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One citizen's message, as its channel delivers it."""

    label: str  # what the demo's table calls it
    ref: str  # a string found in the stored raw message (Message-ID, post id): finds it again
    raw: bytes
    complaint: bool = True  # False: lapakd must store it but not make a complaint of it
    showcase: bool = False  # the one whose forward the demo prints


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
    from lapakd.embedded.replica.x import XReplica, minutes_ago

    x = stack.enter_context(XReplica())

    def deliver() -> list[Sample]:
        post = x.add_mention(
            "Jalan berlubang besar di Jl. Raya Patikraja depan SMP N 1, sudah 3 motor jatuh "
            "minggu ini. Mohon segera ditambal 🙏", "warga_patikraja",
            photos=[pothole_photo()], created_at=minutes_ago(50))
        retweet = x.add_mention("", "rina_kedungwuluh", retweet_of=post)
        # Two DMs from one citizen within the chat window: one complaint.
        dm1 = x.add_dm("Selamat pagi min, sampah di TPS Pasar Ajibarang sudah seminggu tidak "
                       "diangkut", "dewi_ajibarang", created_at=minutes_ago(45))
        dm2 = x.add_dm("baunya sampai ke SD sebelahnya, anak-anak terganggu", "dewi_ajibarang",
                       created_at=minutes_ago(44))
        return [  # the retweet first: its raw names the post too, samples match in order
            Sample("X retweet of it (not a complaint)", retweet, retweet.encode(),
                   complaint=False),
            Sample("X mention: pothole, with a photo", post, post.encode()),
            Sample("X DM: rubbish at TPS (1 of 2)", dm1, dm1.encode()),
            Sample("X DM: rubbish at TPS (2 of 2)", dm2, dm2.encode()),
        ]

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
    from lapakd.embedded.replica import graph
    from lapakd.embedded.replica.x import minutes_ago

    replica = stack.enter_context(graph.GraphReplica())
    people = {"7302468013579246": "Yudi Hartono"}  # page-scoped id → name

    def deliver() -> list[Sample]:
        # Three short messages, the way people chat: together they are one complaint.
        psid = "7302468013579246"
        chat = ["Pak, mau lapor",
                "lampu PJU di Jl. Gatot Subroto Purwokerto mati sudah seminggu, malam gelap sekali",
                "tolong ya 🙏"]
        mids = [replica.messenger_message(psid, people[psid], text, when=minutes_ago(12 - n))
                for n, text in enumerate(chat)]
        return [Sample(f"Messenger chat: PJU out ({n} of {len(mids)})", mid, mid.encode())
                for n, mid in enumerate(mids, 1)]

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
    from lapakd.embedded.replica import graph
    from lapakd.embedded.replica.x import minutes_ago

    replica = stack.enter_context(graph.GraphReplica())
    settings = {"enabled": True, "phone_number_id": graph.PHONE_NUMBER_ID,
                "access_token": graph.TOKEN, "app_secret": graph.APP_SECRET,
                "verify_token": graph.VERIFY_TOKEN, "graph_url": replica.url}
    # The webhook's port is known once it starts (serve); it is where the messages arrive.
    servers = {"webhook": "", "Graph API": replica.url.removeprefix("http://")}
    webhook: dict[str, str] = {}

    def serve(config_path: Path) -> None:
        from lapakd.config import load_config
        from lapakd.intake.webhook import PATH, WebhookServer

        server = WebhookServer(load_config(config_path)).start()
        stack.callback(server.stop)
        webhook["url"] = f"http://{server.config_listen}{PATH}"
        servers["webhook"] = f"{server.config_listen}{PATH}"

    def deliver() -> list[Sample]:
        wamid = replica.wamid()
        body = replica.whatsapp_text_body(
            "6281327654321", "Endang Susilowati",
            "Assalamualaikum, sampah di TPS dekat Pasar Sokaraja menumpuk sudah 5 hari tidak "
            "diangkut, baunya sampai ke jalan. Mohon segera diangkut",
            wamid=wamid, when=minutes_ago(8))
        status, answer = graph.send_webhook(webhook["url"], body, settings["app_secret"])
        if status != 200:
            raise DemoError(f"the webhook refused the WhatsApp message: {status} {answer[:200]!r}")
        return [Sample("WhatsApp: rubbish at TPS Sokaraja", wamid, wamid.encode())]

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


# -- the citizens' emails -------------------------------------------------------------------


def _headers(sender: str, subject: str, hours_ago: float) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = DESK_EMAIL
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(WIB) - timedelta(hours=hours_ago))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
    return msg


def _mail(
    sender: str,
    subject: str,
    text: str | None,
    *,
    html: str | None = None,
    hours_ago: float,
    attachments: tuple[tuple[str, str, bytes], ...] = (),
    headers: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """A complete RFC 5322 message as a mail client would send it, and its Message-ID."""
    msg = _headers(sender, subject, hours_ago)
    for name, value in (headers or {}).items():
        msg[name] = value
    if text is None:
        msg.set_content(html or "", subtype="html")
    else:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=email.policy.SMTP), msg["Message-ID"].strip("<>")


def _mail_with_broken_charset(
    sender: str, subject: str, body: bytes, *, hours_ago: float
) -> tuple[bytes, str]:
    """An old mail client's message: Windows-1252 bytes under a charset nobody knows."""
    msg = _headers(sender, subject, hours_ago)
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = 'text/plain; charset="x-unknown"'
    msg["Content-Transfer-Encoding"] = "8bit"
    # surrogateescape: the email package writes these bytes back out unchanged.
    msg.set_payload(body.decode("ascii", "surrogateescape"))
    return msg.as_bytes(policy=email.policy.SMTP), msg["Message-ID"].strip("<>")


def email_samples() -> list[Sample]:
    """About a dozen mails from citizens of Banyumas, arrived over the last morning."""
    out: list[Sample] = []

    def add(label: str, mail: tuple[bytes, str], **kw: Any) -> None:
        raw, message_id = mail
        out.append(Sample(label, message_id, raw, **kw))

    add("pothole, with a photo", _mail(
        "Siti Rahayu <siti.rahayu@example.com>",
        "Jalan berlubang di Jl. Raya Kembaran, membahayakan pengendara",
        "Selamat siang Bapak/Ibu,\n\n"
        "Saya ingin melaporkan jalan berlubang di Jl. Raya Kembaran, sekitar 200 meter ke timur "
        "dari Pasar Kembaran (depan toko bangunan Sumber Rejeki). Lubangnya lebar kurang lebih "
        "40 cm dan cukup dalam. Kalau hujan tergenang air sehingga tidak kelihatan; minggu lalu "
        "dua pengendara motor jatuh di situ.\n\n"
        "Mohon segera ditambal sebelum ada korban lagi. Foto terlampir.\n\n"
        "Terima kasih,\nSiti Rahayu\nDesa Kembaran RT 03/RW 02\n",
        hours_ago=7.5,
        attachments=(("lubang-jl-raya-kembaran.jpg", "image/jpeg", pothole_photo()),),
    ), showcase=True)
    add("streetlights (PJU) out, Sokaraja", _mail(
        "Agus Wibowo <agus.wibowo73@example.net>",
        "Lampu PJU mati di Sokaraja Lor",
        "Assalamualaikum,\n\n"
        "Lampu penerangan jalan umum (PJU) di Jl. Jenderal Soedirman, Sokaraja Lor, dari "
        "perempatan dekat Masjid Agung Sokaraja sampai SPBU Sokaraja sudah mati sekitar "
        "dua minggu. Malam hari gelap sekali, padahal ramai truk dan warga pulang kerja. "
        "Kemarin ada kejadian jambret di situ.\n\n"
        "Mohon lampu PJU segera diperbaiki.\n\nWassalam,\nAgus Wibowo\n",
        hours_ago=7.2,
    ))
    add("rubbish piling up at a TPS", _mail(
        "Dewi Lestari <dewi.lestari@example.org>",
        "Sampah menumpuk di TPS Grendeng, Purwokerto Utara",
        "Yth. Lapak Aduan,\n\n"
        "Sampah di TPS dekat Jl. Kampus, Kelurahan Grendeng, Purwokerto Utara, sudah seminggu "
        "tidak diangkut. Tumpukannya meluber ke badan jalan, baunya sampai ke rumah warga dan "
        "kos mahasiswa, banyak lalat, dan kalau hujan air lindinya merembes ke halaman rumah.\n\n"
        "Mohon truk sampah dijadwalkan mengangkut secepatnya.\n\n"
        "Hormat saya,\nDewi Lestari\n",
        hours_ago=6.8,
    ))
    add("PDAM water off for days", _mail(
        "Bambang Sutrisno <bambang.sutrisno@example.com>",
        "Air PDAM mati sudah 4 hari di Perumahan Griya Teluk Indah",
        "Selamat pagi,\n\n"
        "Air PDAM di Perumahan Griya Teluk Indah, Kelurahan Teluk, Purwokerto Selatan, tidak "
        "mengalir sejak hari Jumat, sudah empat hari, tanpa pemberitahuan. Warga terpaksa "
        "membeli air galon untuk mandi dan memasak. Waktu saya telepon kantor PDAM hanya "
        "dijawab ada perbaikan pipa, tanpa kepastian kapan selesai.\n\n"
        "Nomor pelanggan saya 03-12345. Mohon kejelasan, dan kiriman tangki air bersih untuk "
        "sementara.\n\nTerima kasih,\nBambang Sutrisno\n",
        hours_ago=6.1,
    ))
    add("pungli for a KTP at the kelurahan", _mail(
        "Rina Marlina <rina.marlina@example.net>",
        "Dimintai uang untuk mengurus KTP di kantor kelurahan",
        "Bapak/Ibu yang terhormat,\n\n"
        "Senin kemarin saya mengurus KTP-el anak saya di kantor Kelurahan Sokanegara, "
        "Purwokerto Timur. Petugas loket bilang kalau mau cepat jadi harus bayar Rp150.000 "
        "\"uang administrasi\", tanpa kuitansi. Setahu saya mengurus KTP itu gratis. Ini "
        "pungli, dan bukan hanya saya: beberapa warga yang antre juga dimintai.\n\n"
        "Saya bersedia memberi keterangan, tetapi mohon identitas saya dirahasiakan.\n\n"
        "Rina\n",
        hours_ago=5.4,
    ))
    add("slow, rude service at a puskesmas", _mail(
        "Hendra Gunawan <hendra.gunawan@example.org>",
        "Pelayanan Puskesmas Kedungbanteng lama dan petugas tidak ramah",
        "Selamat siang,\n\n"
        "Kamis lalu saya mengantar ibu saya (72 tahun) berobat ke Puskesmas Kedungbanteng. "
        "Kami datang pukul 07.30 tetapi baru diperiksa dokter pukul 12.00. Petugas pendaftaran "
        "ketus: \"kalau tidak mau menunggu ya ke klinik swasta saja\". Banyak lansia menunggu "
        "tanpa tempat duduk.\n\n"
        "Mohon pelayanan puskesmas dibenahi, terutama antrean untuk lansia.\n\n"
        "Hendra Gunawan\n",
        hours_ago=5.0,
    ))
    add("school fees at PPDB re-registration", _mail(
        "Yuliani <yuliani.purwokerto@example.com>",
        "Biaya daftar ulang PPDB di SMP negeri",
        "Yth. Admin Lapak Aduan,\n\n"
        "Anak saya diterima di sebuah SMP negeri di Purwokerto lewat jalur zonasi PPDB tahun "
        "ini. Saat daftar ulang, orang tua diminta membayar Rp2.750.000 untuk seragam, "
        "\"sumbangan gedung\" dan kegiatan; kalau belum bayar sampai akhir bulan, anak tidak "
        "mendapat seragam. Bukankah sekolah negeri tidak boleh menarik biaya seperti ini?\n\n"
        "Mohon Dinas Pendidikan memberi penjelasan.\n\nSalam,\nYuliani\n",
        hours_ago=4.3,
    ))
    add("flooding, blocked drainage", _mail(
        "Teguh Santoso <teguh.santoso@example.net>",
        "Banjir setiap hujan karena drainase tersumbat di Karangpucung",
        "Selamat sore,\n\n"
        "Setiap hujan deras, Jl. Gerilya dekat Kelurahan Karangpucung, Purwokerto Selatan, "
        "banjir setinggi lutut dan air masuk ke rumah warga. Saluran drainase dan gorong-gorong "
        "di bawah jalan tersumbat sampah dan lumpur, bertahun-tahun tidak dikeruk.\n\n"
        "Mohon saluran segera dinormalisasi sebelum puncak musim hujan.\n\n"
        "Teguh Santoso, RT 05/RW 07\n",
        hours_ago=3.9,
    ))
    add("street vendors and illegal parking", _mail(
        "Lukman Hakim <lukman.hakim@example.com>",
        "PKL dan parkir liar di trotoar depan Alun-alun Purwokerto",
        "Assalamualaikum,\n\n"
        "Trotoar Jl. Jenderal Soedirman depan Alun-alun Purwokerto dari sore sampai malam "
        "penuh lapak PKL dan motor yang parkir, sehingga pejalan kaki harus turun ke jalan. "
        "Juru parkir liar menarik Rp5.000 tanpa karcis.\n\n"
        "Mohon ada penertiban PKL dan parkir liar.\n\nLukman\n",
        hours_ago=3.2,
    ))
    add("traffic light out (HTML-only mail)", _mail(
        "Wahyu Nugroho <wahyu.nugroho@example.org>",
        "Lampu lalu lintas perempatan Pasar Wage mati",
        None,
        html=(
            "<html><body><p>Selamat siang,</p>"
            "<p>Lampu lalu lintas (<b>bangjo</b>) di perempatan Pasar Wage, Purwokerto, "
            "<b>mati total sejak tadi pagi</b>. Kendaraan dari empat arah saling serobot:</p>"
            "<ul><li>pagi tadi dua motor bersenggolan,</li>"
            "<li>belum ada yang mengatur lalu lintas di situ.</li></ul>"
            "<p>Mohon segera diperbaiki.</p><p>Wahyu Nugroho</p></body></html>"
        ),
        hours_ago=2.6,
    ))
    add("broken bridge (unknown charset)", _mail_with_broken_charset(
        "Sumarni <sumarni.tanggeran@example.net>",
        "Jembatan desa rusak di Somagede",
        "Jembatan penghubung Desa Tanggeran dan Desa Somagede, Kecamatan Somagede, papan "
        "lantainya banyak yang lapuk dan bolong. Anak-anak sekolah tiap hari lewat situ. "
        "Kata pak kadus \x93sudah diusulkan\x94 tapi belum ada kabar \x96 mohon segera "
        "diperbaiki sebelum ada yang celaka.\r\n\r\nSumarni\r\n".encode("latin-1"),
        hours_ago=2.1,
    ))
    add("out-of-office auto-reply", _mail(
        "Heru Prasetyo <heru.prasetyo@dinkes.example.go.id>",
        "Balasan otomatis: Sedang cuti",
        "Terima kasih atas email Anda.\n\n"
        "Saya sedang cuti sampai dengan hari Senin dan tidak dapat membalas email. Untuk hal "
        "yang mendesak silakan menghubungi bagian umum Dinas Kesehatan.\n\n"
        "Salam,\nHeru Prasetyo\n",
        hours_ago=1.5,
        headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes",
                 "Precedence": "auto_reply"},
    ), complaint=False)
    add("PLN power cuts (not the regency's)", _mail(
        "Eko Prasetyo <eko.prasetyo@example.com>",
        "Listrik PLN sering padam di Ajibarang",
        "Selamat malam,\n\n"
        "Seminggu ini listrik di Desa Pancasan, Kecamatan Ajibarang, padam hampir setiap malam "
        "dua sampai tiga jam tanpa pemberitahuan. Kulkas dan TV warga ada yang rusak karena "
        "tegangan naik-turun. Sudah lapor ke PLN 123 tapi belum ada perbaikan.\n\n"
        "Mohon bantuan Pemkab menyampaikan ke PLN.\n\nEko\n",
        hours_ago=1.1,
    ))
    add("informal spelling (jln, gk, tdk, bgt)", _mail(
        "dimas <dimas.karanglewas@example.net>",
        "jln rusak parah",
        "min tolong dong jln depan SDN 2 Karanglewas rusak parah bgt, lubangnya gede2 dan "
        "dalem, udh 3 bln gk diperbaiki. tdk ada tindakan sm sekali pdhl tiap hari dilewatin "
        "anak2 sekolah. klo malem gk keliatan krn gelap. mksh\n",
        hours_ago=0.4,
    ))
    return out


# -- the demo folder and its lapakd.toml ----------------------------------------------------


def prepare_dir(workdir: Path) -> Path:
    """Make `workdir` ready for a fresh demo; clean only what an earlier demo left there."""
    workdir = workdir.resolve()
    if workdir.exists() and not workdir.is_dir():
        raise DemoError(f"{workdir} exists and is not a folder; choose another --dir")
    if workdir.is_dir() and any(workdir.iterdir()) and not (workdir / MARKER).is_file():
        raise DemoError(
            f"{workdir} is not empty and was not made by lapakd demo; choose another --dir"
        )
    for name in ("var", OUTBOX_MAIL):
        # Only these; anything else the user put into the folder stays.
        target = workdir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text(
        "Made by `lapakd demo`, which empties var/ and outbox-mail/ and rewrites lapakd.toml\n"
        "here on every run.\n"
        "You may delete this whole folder.\n",
        encoding="utf-8",
    )
    return workdir


def find_rules_dir(workdir: Path) -> Path:
    """The project's default rules: rules/ of the checkout, else the installed package."""
    checkout = Path(lapakd.__file__).resolve().parent.parent / "rules"
    if (checkout / "agencies.yaml").is_file():
        return checkout
    try:
        packaged = importlib.resources.files("lapakd.default_rules")
    except ModuleNotFoundError:
        packaged = None
    if packaged is not None and packaged.joinpath("agencies.yaml").is_file():
        if isinstance(packaged, Path):
            return packaged
        copy = workdir / "var" / "default-rules"  # inside a zip: lapakd reads a real folder
        copy.mkdir(parents=True)
        for item in packaged.iterdir():
            if item.name.endswith((".yaml", ".yml")):
                (copy / item.name).write_bytes(item.read_bytes())
        return copy
    raise DemoError(
        f"no default rules found: neither {checkout}/agencies.yaml nor the package "
        "lapakd.default_rules exists (run the demo from a lapakd checkout)"
    )


# Comments written above a key of the demo's lapakd.toml.
CONFIG_NOTES = {
    "desk.group_window_minutes": (
        "Chat messages (Messenger, WhatsApp, X DMs) are collected for 30 minutes by default",
        "before the chat is routed, in case the citizen writes more. The demo does not wait",
        "30 minutes: it routes each chat as soon as its messages are in.",
    ),
}


def write_config(
    workdir: Path, rules_dir: Path, sink: SmtpSink, channels: list[DemoChannel]
) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "desk": {
            "name": "Lapak Aduan Banyumas (demo)",
            "email": DESK_EMAIL,
            "admin_email": ADMIN_EMAIL,
            "public_url": "http://localhost:8000",
            "timezone": "Asia/Jakarta",
            "group_window_minutes": 0,
        },
        "paths": {"data_dir": "var", "rules_dir": str(rules_dir), "public_dir": "var/public"},
        "smtp": {"host": sink.host, "port": sink.port, "security": "none"},
    }
    for channel in channels:
        sections[f"channels.{channel.name}"] = channel.settings
        sections.update(channel.sections)
    header = (
        "# Written by `lapakd demo` for servers that exist only while the demo runs\n"
        "# (lapakd demo --keep-running keeps them up). The full format: lapakd.toml in the\n"
        "# lapakd repository. Relative paths are relative to this file.\n\n"
    )
    path = workdir / "lapakd.toml"
    path.write_text(header + dump_toml(sections, CONFIG_NOTES), encoding="utf-8")
    return path


# -- running the desk -------------------------------------------------------------------------


def run_pipeline(config_path: Path, delivered: int, rounds: int = 3) -> None:
    """`lapakd run --once` until everything delivered is fetched, processed, routed and sent."""
    from lapakd import daemon
    from lapakd.app import Desk
    from lapakd.config import load_config

    left = ""
    for _ in range(rounds):
        # A fresh Desk per round: run_once takes the store's runner lock, close() frees it.
        desk = Desk(load_config(config_path))
        try:
            daemon.run_once(desk)
            left = work_left(desk, delivered)
        finally:
            desk.close()
        if not left:
            return
    raise DemoError(f"lapakd did not finish: {left}")


def work_left(desk: Desk, delivered: int) -> str:
    """What is not done yet, in words; empty when all is done."""
    store = desk.store
    stored = store.one("SELECT count(*) n FROM messages")["n"]
    if stored < delivered:
        errors = [
            f"{r['channel']}: {r['last_error']}" for r in store.all(
                "SELECT channel, last_error FROM channel_health WHERE state != 'ok'")
        ]
        return (f"only {stored} of {delivered} messages were fetched"
                + (f" ({'; '.join(errors)})" if errors else ""))
    pending = store.one("SELECT count(*) n FROM messages WHERE state = 'pending'")["n"]
    if pending:
        return f"{pending} message(s) still waiting to be processed"
    new = store.one("SELECT count(*) n FROM complaints WHERE status = 'new'")["n"]
    if new:
        return f"{new} complaint(s) still waiting to be routed"
    unsent = store.all(
        "SELECT status, last_error FROM outbox WHERE status != 'sent' ORDER BY id")
    if unsent:
        why = next((r["last_error"] for r in unsent if r["last_error"]), None)
        return f"{len(unsent)} email(s) not sent" + (f" (last error: {why})" if why else "")
    return ""


# -- reading the result back --------------------------------------------------------------------


@dataclass
class Row:
    """One delivered message and what lapakd made of it."""

    sample: str
    channel: str
    message: str  # msg-N
    ticket: str | None = None
    status: str = ""
    agencies: list[str] = field(default_factory=list)
    category: str | None = None
    rule: str | None = None
    matched: list[str] = field(default_factory=list)
    kind: str | None = None
    error: str | None = None
    expected_complaint: bool = True
    showcase: bool = False


def read_result(config_path: Path, samples: list[Sample]) -> tuple[list[Row], dict[str, int]]:
    """Each delivered message with its complaint, and how many emails of each kind were sent
    (to the SMTP sink: other channels' replies go to their own servers)."""
    from lapakd.app import Desk
    from lapakd.config import load_config

    desk = Desk(load_config(config_path))
    try:
        found = desk.store.all(
            "SELECT m.id, m.channel, m.raw, m.state, m.kind, m.error, c.ticket, c.status,"
            " c.agencies, c.category, c.rule, c.matched"
            " FROM messages m LEFT JOIN complaints c ON c.id = m.complaint_id ORDER BY m.id"
        )
        sent = {r["kind"]: r["n"] for r in desk.store.all(
            "SELECT kind, count(*) n FROM outbox WHERE status = 'sent'"
            " AND transport IN ('smtp', 'email') GROUP BY kind")}
    finally:
        desk.close()
    rows = []
    for r in found:
        sample = next((s for s in samples if s.ref.encode() in r["raw"]), None)
        row = Row(
            sample=sample.label if sample else "?",
            channel=r["channel"],
            message=f"msg-{r['id']}",
            kind=r["kind"],
            error=r["error"],
            expected_complaint=sample.complaint if sample else True,
            showcase=sample.showcase if sample else False,
        )
        if r["ticket"] is not None:
            row.ticket, row.status = r["ticket"], r["status"]
            row.agencies = json.loads(r["agencies"])
            row.category, row.rule = r["category"], r["rule"]
            row.matched = json.loads(r["matched"])
        elif r["state"] == "quarantined":
            row.status = "quarantined"
        else:
            row.status = "not a complaint"
        rows.append(row)
    return rows, sent


def problems(rows: list[Row], samples: list[Sample]) -> list[str]:
    """Where lapakd did not do what the demo's samples are there to show."""
    out = []
    if len(rows) != len(samples):
        out.append(f"{len(samples)} messages delivered, {len(rows)} stored")
    for row in rows:
        if row.status == "quarantined":
            out.append(f"{row.sample!r} was quarantined: {row.error}")
        elif row.expected_complaint and row.ticket is None:
            out.append(f"{row.sample!r} did not become a complaint (kind {row.kind})")
        elif not row.expected_complaint and row.ticket is not None:
            out.append(f"{row.sample!r} became complaint {row.ticket}; it is not one")
    return out


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(rows: list[Row]) -> str:
    table = [("ticket", "status", "agency(ies)", "rule (matched words)", "sample")]
    for row in rows:
        if row.ticket is None:
            what = (f"error: {row.error}" if row.status == "quarantined"
                    else f"stored as {row.kind}, not routed")
            table.append((row.message, row.status, "-", _cut(what, 44), row.sample))
            continue
        words = ", ".join(row.matched[:3]) + (", …" if len(row.matched) > 3 else "")
        rule = f"{row.rule} ({words})" if row.rule else "no rule matched"
        table.append((
            row.ticket, row.status, _cut(", ".join(row.agencies) or "-", 24), _cut(rule, 44),
            row.sample,
        ))
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    return "\n".join(
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(line[:4], widths, strict=True))
        + "  " + line[4]
        for line in table
    )


def format_replies(replies: Sequence[tuple[str, str, str]]) -> str:
    """One line each: channel, recipient, the text's first sentence (it has the ticket)."""
    lines = [(ch, to, text.replace(". ", ". …", 1).partition("…")[0].rstrip() + (
        " …" if ". " in text else "")) for ch, to, text in replies]
    w0, w1 = (max(len(line[i]) for line in lines) for i in (0, 1))
    return "\n".join(f"  {ch.ljust(w0)}  {to.ljust(w1)}  {_cut(text, 110)}"
                     for ch, to, text in lines)


def pick_forward(sink: SmtpSink, rows: list[Row]) -> EmailMessage | None:
    """The forward of the showcase complaint (the one with a photo), else the first forward."""
    forwards = [m.message for m in sink.messages if "Auto-Submitted" not in m.message]
    ticket = next((r.ticket for r in rows if r.showcase and r.ticket), None)
    return next((m for m in forwards if m["X-Lapakd-Ticket"] == ticket),
                forwards[0] if forwards else None)


def eml_file(outbox: Path, message: EmailMessage) -> Path | None:
    needle = str(message["Message-ID"]).encode()
    return next((p for p in sorted(outbox.glob("*.eml")) if needle in p.read_bytes()), None)


def format_mail(message: EmailMessage) -> str:
    lines = [f"  {name}: {message[name]}" for name in
             ("From", "To", "Cc", "Subject", "Message-ID", "X-Lapakd-Ticket") if message[name]]
    body = message.get_body(preferencelist=("plain",))
    lines.append("")
    if body is not None:
        lines.extend(f"  | {line}".rstrip() for line in body.get_content().splitlines())
    for part in message.iter_attachments():
        size = len(part.get_payload(decode=True) or b"")
        lines.append(f"  [attachment: {part.get_filename()} ({part.get_content_type()}, "
                     f"{size} bytes)]")
    return "\n".join(lines)


# -- the command ------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    if args.log_level == "info":
        logsetup.setup("warning")  # the demo's own output tells the story; warnings still show
    try:
        return run(args)
    except BrokenPipeError:
        raise  # output piped into `head`: the CLI ends quietly
    except (DemoError, LapakdError, OSError, TimeoutError) as exc:
        return fail(args, _one_line(exc))
    except Exception as exc:  # noqa: BLE001 - one line for the newcomer; --log-level debug for more
        if args.log_level == "debug":
            traceback.print_exc()
        return fail(args, f"{type(exc).__name__}: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, RulesError):
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return f"the rules have errors: {exc.problems[0]}{more}" if exc.problems else str(exc)
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def fail(args: argparse.Namespace, message: str) -> int:
    if args.json:
        print(json.dumps({"ok": False, "error": message}, ensure_ascii=False))
    print(f"lapakd demo: failed: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    workdir = prepare_dir(Path(args.dir))
    rules_dir = find_rules_dir(workdir)
    with contextlib.ExitStack() as stack:
        # The agencies' mail servers, all in one: keeps every email as an .eml file.
        sink = stack.enter_context(SmtpSink(maildir=workdir / OUTBOX_MAIL))
        channels = [start(stack) for start in CHANNELS]
        config_path = write_config(workdir, rules_dir, sink, channels)
        for channel in channels:
            if channel.serve is not None:
                channel.serve(config_path)
        samples = [sample for channel in channels for sample in channel.deliver()]
        run_pipeline(config_path, len(samples))
        rows, sent = read_result(config_path, samples)
        # Grouped by channel, in arrival order within each (a webhook stores at once: the
        # WhatsApp message is in before the first poll).
        order = [ch.name for ch in channels]
        rows.sort(key=lambda r: order.index(r.channel) if r.channel in order else len(order))
        sink.wait_for(sum(sent.values()), timeout=30)  # sent means the sink said 250: already in
        trouble = problems(rows, samples)
        replies = [(ch.name, to, text) for ch in channels if ch.replies
                   for to, text in ch.replies()]
        report(args, workdir, config_path, sink, channels, rows, sent, trouble, replies)
        if args.keep_running:
            keep_running(sink, channels, config_path, sys.stderr if args.json else sys.stdout)
    return 1 if trouble else 0


def report(
    args: argparse.Namespace,
    workdir: Path,
    config_path: Path,
    sink: SmtpSink,
    channels: list[DemoChannel],
    rows: list[Row],
    sent: dict[str, int],
    trouble: list[str],
    replies: Sequence[tuple[str, str, str]] = (),
) -> None:
    outbox = workdir / OUTBOX_MAIL
    servers = {f"{ch.name} {kind}": where for ch in channels for kind, where in ch.servers.items()}
    servers["SMTP sink"] = f"{sink.host}:{sink.port}"
    if args.json:
        print(json.dumps({
            "ok": not trouble,
            "problems": trouble,
            "dir": str(workdir),
            "config": str(config_path),
            "servers": servers,
            "items": [
                {k: v for k, v in vars(row).items() if k not in ("showcase",)} for row in rows
            ],
            "sent": sent,
            "replies": [{"channel": ch, "to": to, "text": text} for ch, to, text in replies],
            "outbox_mail": str(outbox),
            "eml_files": len(list(outbox.glob("*.eml"))),
        }, ensure_ascii=False, indent=2))
        return
    status_of = {r.ticket: r.status for r in rows if r.ticket}  # grouped chats share one
    by_status: dict[str, int] = {}
    for status in status_of.values():
        by_status[status] = by_status.get(status, 0) + 1
    others = sum(1 for r in rows if not r.ticket)
    width = max(len(ch.name) for ch in channels)
    print(f"lapakd demo: {len(rows)} messages arrived on {len(channels)} channels, each served "
          "on this machine:")
    for ch in channels:
        where = ", ".join(f"{kind} {where}" for kind, where in ch.servers.items())
        print(f"  {ch.name.ljust(width)}  {where}")
    print(f"lapakd took them in, processed and routed them, and emailed the agencies "
          f"(SMTP sink {sink.host}:{sink.port}):\n")
    print(format_table(rows))
    print()
    print(f"  {len(status_of)} complaints ("
          + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
          + f"); {others} stored, not a complaint. Emails sent: "
          + (", ".join(f"{n} {k}" for k, n in sorted(sent.items())) or "none") + ".")
    if replies:
        print("\nReplies to citizens, as their channels' API replicas received them:\n")
        print(format_replies(replies))
    forward = pick_forward(sink, rows)
    if forward is not None:
        path = eml_file(outbox, forward)
        where = f" ({_shown(path)})" if path else ""
        print(f"\nOne forward as the agency receives it{where}:\n")
        print(format_mail(forward))
    cfg, cmd = _shown(config_path), lapakd_command()
    ticket = next((r.ticket for r in rows if r.showcase and r.ticket), "LA-…")
    print(f"\nExplore (the store is in {_shown(workdir / 'var')}):")
    print(f"  {cmd} list --config {cfg}")
    print(f"  {cmd} show {ticket} --config {cfg}")
    print(f"  {cmd} status --config {cfg}")
    print(f"  {cmd} rules test 'jalan berlubang di Kembaran' --config {cfg}")
    print(f"  every email sent (forwards, triage notes, receipts) is in {_shown(outbox)}/")
    if trouble:
        print("\nlapakd did not handle every sample as expected:", file=sys.stderr)
        for line in trouble:
            print(f"  - {line}", file=sys.stderr)


def lapakd_command() -> str:
    """How the user calls lapakd from here: `lapakd` if it is on PATH, else the venv's script."""
    script = Path(sys.executable).parent / "lapakd"  # not resolved: the venv's bin/
    found = shutil.which("lapakd")
    if found and Path(found).resolve() == script.resolve():
        return "lapakd"
    return _shown(script) if script.exists() else "lapakd"


def _shown(path: Path) -> str:
    """A path as short as it can be for the user to copy."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def keep_running(
    sink: SmtpSink, channels: list[DemoChannel], config_path: Path, out: TextIO
) -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print("\nThe servers keep running until Ctrl-C:", file=out)
    for ch in channels:
        for kind, where in ch.servers.items():
            login = f"  (login {ch.login})" if ch.login else ""
            print(f"  {ch.name:<8} {kind:<9} {where}{login}", file=out)
    smtp = f"  {'agencies':<8} {'SMTP':<9} {sink.host}:{sink.port}"
    print(f"{smtp}  (saves to {_shown(sink.maildir)})" if sink.maildir else smtp, file=out)
    print(f"Run the daemon against them: {lapakd_command()} run --config {_shown(config_path)}",
          file=out)
    while not stop.wait(timeout=1.0):
        pass
    print("stopping the demo servers", file=out)


# -- a photo of the pothole, made in code -----------------------------------------------------


def pothole_photo(width: int = 160, height: int = 120) -> bytes:
    """A small, real baseline JPEG: grey asphalt with a dark pothole (no image file to ship).

    Every 8x8 block has one shade, so each block is just its DC coefficient followed by
    "end of block": a JPEG encoder without a DCT, valid for any decoder.
    """
    cols, lines = width // 8, height // 8
    shades = []
    for by in range(lines):
        for bx in range(cols):
            dx, dy = (bx - cols * 0.55) / (cols * 0.3), (by - lines * 0.6) / (lines * 0.25)
            r = dx * dx + dy * dy
            if by < lines * 0.15:
                shade = 200  # the kerb
            elif r < 1:
                shade = 40 + int(30 * r)  # the hole, darkest in the middle
            elif r < 1.4:
                shade = 90  # its broken edge
            else:
                shade = 118 + (bx * 7 + by * 13) % 17  # asphalt texture
            shades.append(shade)
    # The standard luminance DC Huffman table (JPEG spec K.3), as canonical codes.
    dc_counts = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    dc_codes, code, symbol = {}, 0, 0
    for length, count in enumerate(dc_counts, 1):
        for _ in range(count):
            dc_codes[symbol] = format(code, f"0{length}b")
            code, symbol = code + 1, symbol + 1
        code <<= 1
    bits, previous = [], 0
    for shade in shades:
        dc = shade - 128  # quantised by 8: the DC of a flat block is 8 * (shade - 128)
        diff, previous = dc - previous, dc
        size = abs(diff).bit_length()
        bits.append(dc_codes[size])
        if size:
            bits.append(format(diff if diff > 0 else diff + (1 << size) - 1, f"0{size}b"))
        bits.append("0")  # the only AC code: end of block
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    scan = int(stream, 2).to_bytes(len(stream) // 8, "big").replace(b"\xff", b"\xff\x00")

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload

    return b"".join([
        b"\xff\xd8",  # start of image
        segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        segment(0xDB, b"\x00" + bytes([8] + [1] * 63)),  # quantisation: DC by 8
        segment(0xC0, struct.pack(">BHHBBBB", 8, height, width, 1, 1, 0x11, 0)),  # grey
        segment(0xC4, b"\x00" + bytes(dc_counts) + bytes(range(12))),  # DC table
        segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00"),  # AC table: EOB only
        segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),  # start of scan
        scan,
        b"\xff\xd9",  # end of image
    ])

