"""A small RTSP server: clients publish a path (ANNOUNCE/RECORD), others read it (DESCRIBE/PLAY).

This is what ``streamdp relay --serve PORT`` runs in-process to serve its anonymized output, and
what the tests use as their RTSP server fixture (``python -m streamdp.live.rtsp_server``). It is a
packet forwarder, not a media server: RTP and RTCP go over the RTSP TCP connection (interleaved,
RFC 2326 section 10.12) byte for byte from the publisher to every reader of the same path. A
client asking for UDP gets ``461 Unsupported Transport`` and FFmpeg, VLC and GStreamer clients
then retry over TCP (VLC: ``--rtsp-tcp`` makes it ask for TCP first).

* One publisher per path; a second ANNOUNCE for a live path is refused (``453``). When the
  publisher leaves, the path's readers are disconnected (they see end of stream, and reconnect).
* DESCRIBE of a path nobody publishes answers ``404``.
* A reader that cannot keep up (more than ``MAX_READER_BACKLOG`` bytes queued) is dropped rather
  than letting memory grow.
* Authentication (optional): with credentials (``RtspServer(auth="user:password")``, or the
  ``STREAMDP_RTSP_AUTH`` environment variable for ``python -m``: never on a command line, where
  ``ps`` shows it), every request but OPTIONS must authenticate or gets ``401``. The scheme
  (``auth_scheme``, ``--auth-scheme``) is ``digest`` by default: the 401 offers only
  ``WWW-Authenticate: Digest`` (MD5, ``qop="auth"`` or the RFC 2069 form), so the password never
  crosses the wire; ``any`` offers Digest and Basic, ``basic`` Basic only (base64, readable by
  anyone on the path). FFmpeg, GStreamer and VLC answer it from ``rtsp://user:password@host/path``.
  Nonces are random, expire, are bounded in number and bound to their connection; responses and
  credentials are compared in constant time; none of them is logged (``rtsp_auth.py``). Neither
  scheme encrypts the stream: for a network beyond the machine, put the server behind a tunnel
  or VPN.

The protocol of one client connection is ``rtsp_connection.py``; this module holds the paths, the
forwarding from a publisher to its readers, the server's thread and event loop, and the
``python -m`` entry point.

Run standalone (loopback by default)::

    python -m streamdp.live.rtsp_server --host 127.0.0.1 --port 8554
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading

from .rtsp_auth import SCHEMES, RtspAuth
from .rtsp_connection import MAX_READER_BACKLOG, PublishedPath, RtspConnection

__all__ = ["MAX_READER_BACKLOG", "RtspServer", "main"]

log = logging.getLogger(__name__)


class RtspServer:
    """The server; ``start()`` runs it on a background thread, ``stop()`` closes every connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8554, auth: str | None = None,
                 auth_scheme: str = "digest") -> None:
        self.host = host
        self.port = port
        self.auth = RtspAuth(auth, auth_scheme) if auth else None  # None: no authentication
        self.published: dict[str, PublishedPath] = {}
        self._conns: set[RtspConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --------------------------------------------------------------------------- forwarding

    def forward(self, publisher: RtspConnection, channel: int, payload: bytes) -> None:
        entry = self.published.get(publisher.path or "")
        if entry is None or entry.publisher is not publisher:
            return
        track = publisher.channel_track.get(channel)
        if track is None:
            return
        key = track if channel % 2 == 0 else -1 - track
        for reader in list(entry.readers):
            if reader.playing:
                reader.send_interleaved(key, payload)

    def detach(self, conn: RtspConnection) -> None:
        self._conns.discard(conn)
        if self.auth is not None:
            self.auth.forget(conn.id)
        entry = self.published.get(conn.path or "")
        if entry is None:
            return
        if entry.publisher is conn:
            del self.published[entry.name]
            log.info("rtsp server: publisher left /%s; closing its %d reader(s)", entry.name, len(entry.readers))
            for reader in list(entry.readers):
                reader.close()
        else:
            entry.readers.discard(conn)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = RtspConnection(self, reader, writer)
        self._conns.add(conn)
        try:
            await conn.serve()
        except asyncio.CancelledError:
            pass  # the server is shutting down: a client cut off mid-read is expected

    # ---------------------------------------------------------------------------- lifecycle

    async def _main(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
        finally:
            self._ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def start(self, timeout: float = 5.0) -> RtspServer:
        self._thread = threading.Thread(target=self._run, name="streamdp-rtsp-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise OSError(f"RTSP server could not listen on {self.host}:{self.port}: {self._error}")
        return self

    def stop(self, timeout: float = 2.0) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def shutdown() -> None:
            for conn in list(self._conns):
                conn.close()
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()

        try:
            loop.call_soon_threadsafe(shutdown)
        except RuntimeError:
            return
        if self._thread is not None:
            self._thread.join(timeout)

    def url(self, path: str, host: str | None = None) -> str:
        h = host or ("127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host)
        return f"rtsp://{h}:{self.port}/{path.strip('/')}"

    def paths(self) -> list[str]:
        return sorted(self.published)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamdp.live.rtsp_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554, help="0 picks a free port (printed)")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process is gone")
    parser.add_argument("--auth-scheme", choices=SCHEMES, default="digest",
                        help="with STREAMDP_RTSP_AUTH set: what the 401 offers (default digest)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    parent = os.getppid()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="rtsp-server: %(message)s")
    try:
        server = RtspServer(args.host, args.port, auth=os.environ.get("STREAMDP_RTSP_AUTH") or None,
                            auth_scheme=args.auth_scheme).start()
    except (OSError, ValueError) as exc:
        print(f"rtsp-server: error: {exc}", file=sys.stderr)
        return 2
    print(f"listening {server.url('')} port={server.port}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.2):
        if server._thread is not None and not server._thread.is_alive():
            break
        if args.exit_with_parent and os.getppid() != parent:
            break  # the relay that started us is gone (even if it was killed)
    server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
