"""A real IMAP server in this process for `lapakd demo`: pymap's in-memory backend, one user."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from argparse import Namespace


class EmbeddedImap:
    """A real IMAP server on a loopback port: pymap's in-memory ``dict`` backend, one user.

    pymap is asyncio-based; it gets its own event loop in a daemon thread so that the rest of
    the demo (and lapakd, which is synchronous) runs unchanged in the main thread. We bind the
    listening socket ourselves (port 0), so the port is free and nobody can take it first.
    """

    def __init__(self, user: str, password: str, host: str = "127.0.0.1",
                 idle: bool = True) -> None:
        self.user, self.password, self.host = user, password, host
        self.idle = idle  # False: no IDLE in CAPABILITY, and the command refused (tests)
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
        from pymap.config import BackendCapability
        from pymap.imap import IMAPServer
        from pymap.user import Passwords, UserMetadata
        from pysasl.hashing import Cleartext

        class DemoConfig(Config):
            @property
            def greeting(self) -> bytes:  # the default asks DNS for our host name
                return b"lapakd demo IMAP ready"

        class NoIdleConfig(DemoConfig):
            # pymap's `disable_idle` argument is read nowhere (pymap 0.36.7); without IDLE in the
            # backend's capabilities pymap leaves it out of CAPABILITY and refuses the command.
            @property
            def backend_capability(self) -> BackendCapability:
                return BackendCapability(idle=False, object_id=True, multi_append=True)

        config = (DemoConfig if self.idle else NoIdleConfig)(
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
