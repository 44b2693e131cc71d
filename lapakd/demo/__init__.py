"""`lapakd demo`: the whole desk on this machine, with no account and no network.

This package is also the shortest complete picture of how lapakd is wired:

1. Every channel gets a local server: for email an IMAP server (pymap's in-memory backend) in a
   thread of this process. The agencies' mail servers are one SMTP sink that keeps what it
   receives as .eml files in ``<dir>/outbox-mail/``.
2. ``<dir>/lapakd.toml`` is written pointing at those servers, with the project's default rules.
3. Citizens' messages are delivered to the channel servers the way the real world would (for
   email: IMAP APPEND of complete RFC 5322 mails; for WhatsApp, which only pushes: a webhook
   POST signed like Meta signs it, to lapakd's own ``/webhook`` served from that lapakd.toml).
4. ``lapakd.daemon.run_once`` does what the daemon does: poll, process, route, send.
5. The result is read back from the store: what ``lapakd list`` / ``show`` would show.

The package: ``run`` (this flow, the command), ``channels`` (one function per channel: its
server, its lapakd.toml section, its deliveries; how to add one is said there), ``samples`` (the
citizens' messages, read from the files in ``samples/``), ``config`` (the demo folder and its
lapakd.toml), ``result`` (reading the store back, the printed report) and ``desk`` (addresses and
names). The embedded IMAP server is ``lapakd.embedded.imap``.
"""

from lapakd.demo.run import main

__all__ = ["main"]
