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
  ``ps`` shows it), every request but OPTIONS needs ``Authorization: Basic`` with them, or gets
  ``401`` with ``WWW-Authenticate: Basic``; FFmpeg, GStreamer and VLC send it from
  ``rtsp://user:password@host/path``. Credentials are compared in constant time and never logged.
  Basic auth sends them base64-encoded, not encrypted: for a network beyond the machine, put the
  server behind a tunnel or VPN.

Run standalone (loopback by default)::

    python -m streamdp.live.rtsp_server --host 127.0.0.1 --port 8554
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import itertools
import logging
import os
import secrets
import signal
import sys
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MAX_READER_BACKLOG = 4 * 1024 * 1024  # bytes queued for one reader before it is dropped
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
PUBLIC = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 454: "Session Not Found",
    453: "Not Enough Bandwidth", 455: "Method Not Valid in This State", 461: "Unsupported Transport",
    500: "Internal Server Error",
}  # fmt: skip


@dataclass
class _Path:
    name: str
    sdp: str
    controls: list[str]  # a=control of each media section, in order
    publisher: _Conn
    readers: set[_Conn] = field(default_factory=set)


def _media_controls(sdp: str) -> list[str]:
    controls: list[str] = []
    in_media = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_media = True
            controls.append(f"trackID={len(controls)}")
        elif in_media and line.startswith("a=control:"):
            controls[-1] = line.split(":", 1)[1].strip()
    return controls


def _path_of(url: str) -> str:
    try:
        return urlsplit(url).path.strip("/")
    except ValueError:
        return ""


class _Conn:
    """One client connection (publisher or reader)."""

    ids = itertools.count(1)

    def __init__(self, server: RtspServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.id = next(self.ids)
        self.session = secrets.token_hex(8)
        self.role: str | None = None  # "publisher" | "reader"
        self.path: str | None = None
        self.pending_sdp: str | None = None
        # publisher: interleaved channel -> track index; reader: track index -> interleaved channel
        self.channel_track: dict[int, int] = {}
        self.track_channel: dict[int, int] = {}
        self.playing = False
        self.closed = False

    # -------------------------------------------------------------------------------- replies

    def reply(self, cseq: str | None, status: int, headers: dict[str, str] | None = None, body: str = "") -> None:
        lines = [f"RTSP/1.0 {status} {_REASONS.get(status, 'Error')}"]
        if cseq is not None:
            lines.append(f"CSeq: {cseq}")
        lines.append("Server: streamdp")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        data = body.encode()
        if data:
            lines.append(f"Content-Length: {len(data)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)

    def send_interleaved(self, track: int, payload: bytes) -> None:
        ch = self.track_channel.get(track)
        if ch is None or self.closed:
            return
        if self.writer.transport.get_write_buffer_size() > MAX_READER_BACKLOG:
            log.warning("rtsp server: reader %d on /%s is too slow; disconnecting it", self.id, self.path)
            self.close()
            return
        self.writer.write(b"$" + bytes([ch]) + len(payload).to_bytes(2, "big") + payload)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001
                pass

    # ------------------------------------------------------------------------------ protocol

    async def serve(self) -> None:
        try:
            while not self.closed:
                first = await self.reader.readexactly(1)
                if first == b"$":
                    head = await self.reader.readexactly(3)
                    size = int.from_bytes(head[1:3], "big")
                    payload = await self.reader.readexactly(size)
                    if self.role == "publisher" and self.playing:
                        self.server._forward(self, head[0], payload)
                    continue  # a reader's RTCP receiver reports: nothing to do with them
                head = first + await self.reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_HEADER_BYTES:
                    return
                await self._request(head.decode("utf-8", "replace"))
                await self.writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass
        finally:
            self.close()
            self.server._detach(self)

    async def _request(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = ""
        length = int(headers.get("content-length", "0") or 0)
        if length:
            if length > MAX_BODY_BYTES:
                self.close()
                return
            body = (await self.reader.readexactly(length)).decode("utf-8", "replace")
        cseq = headers.get("cseq")
        if len(parts) != 3:
            self.reply(cseq, 400)
            return
        method, url = parts[0].upper(), parts[1]
        if self.server._auth is not None and method != "OPTIONS":
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode("utf-8", "replace"), self.server._auth.encode("ascii")):
                self.reply(cseq, 401, {"WWW-Authenticate": 'Basic realm="streamdp"'})
                return
        handler = getattr(self, f"_on_{method.lower()}", None)
        if handler is None:
            self.reply(cseq, 405, {"Allow": PUBLIC})
            return
        handler(cseq, url, headers, body)

    def _on_options(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        self.reply(cseq, 200, {"Public": PUBLIC})

    def _on_get_parameter(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        self.reply(cseq, 200, {"Session": self.session})

    _on_set_parameter = _on_get_parameter

    def _on_announce(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        path = _path_of(url)
        if not path or not body.strip():
            self.reply(cseq, 400)
            return
        if self.server._paths.get(path) is not None:
            self.reply(cseq, 453)  # someone already publishes this path
            return
        self.role, self.path, self.pending_sdp = "publisher", path, body
        self.reply(cseq, 200)

    def _on_describe(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        path = _path_of(url)
        entry = self.server._paths.get(path)
        if entry is None or not entry.publisher.playing:
            self.reply(cseq, 404)
            return
        base = url if url.endswith("/") else url + "/"
        self.reply(cseq, 200, {"Content-Base": base, "Content-Type": "application/sdp"}, entry.sdp)

    def _track_for(self, url: str, controls: list[str], path: str) -> int | None:
        rest = _path_of(url)[len(path):].strip("/")
        if not rest:
            return 0 if len(controls) == 1 else None
        for i, ctl in enumerate(controls):
            if rest == ctl or ctl.endswith("/" + rest) or url.endswith(ctl):
                return i
        return None

    def _on_setup(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        transport = headers.get("transport", "")
        offer = next((t for t in transport.split(",") if "TCP" in t.upper().split(";")[0]), None)
        if offer is None:
            self.reply(cseq, 461)
            return
        interleaved = None
        for param in offer.split(";"):
            if param.strip().startswith("interleaved="):
                lo = param.split("=", 1)[1].split("-")[0]
                interleaved = int(lo) if lo.isdigit() else None
        if self.role == "publisher":
            if self.pending_sdp is None or self.path is None:
                self.reply(cseq, 455)
                return
            controls = _media_controls(self.pending_sdp)
            track = self._track_for(url, controls, self.path)
            if track is None:
                self.reply(cseq, 404)
                return
            ch = interleaved if interleaved is not None else 2 * track
            self.channel_track[ch] = track
            self.channel_track[ch + 1] = track  # RTCP
        else:
            path = next((p for p in self.server._paths if _path_of(url) == p or _path_of(url).startswith(p + "/")), None)
            entry = self.server._paths.get(path) if path else None
            if entry is None:
                self.reply(cseq, 404)
                return
            track = self._track_for(url, entry.controls, entry.name)
            if track is None:
                self.reply(cseq, 404)
                return
            self.role, self.path = "reader", entry.name
            ch = interleaved if interleaved is not None else 2 * track
            self.track_channel[track] = ch
            self.track_channel[-1 - track] = ch + 1  # RTCP of track i lives under key -1-i
        self.reply(
            cseq, 200,
            {"Transport": f"RTP/AVP/TCP;unicast;interleaved={ch}-{ch + 1}", "Session": f"{self.session};timeout=60"},
        )

    def _on_record(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        if self.role != "publisher" or self.pending_sdp is None or self.path is None:
            self.reply(cseq, 455)
            return
        if self.server._paths.get(self.path) is not None:
            self.reply(cseq, 453)
            return
        self.server._paths[self.path] = _Path(self.path, self.pending_sdp, _media_controls(self.pending_sdp), self)
        self.playing = True
        self.reply(cseq, 200, {"Session": self.session})
        log.info("rtsp server: publisher %d started /%s", self.id, self.path)

    def _on_play(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        entry = self.server._paths.get(self.path or "")
        if self.role != "reader" or entry is None:
            self.reply(cseq, 455)
            return
        self.reply(cseq, 200, {"Session": self.session, "Range": "npt=0.000-"})
        entry.readers.add(self)
        self.playing = True
        log.info("rtsp server: reader %d playing /%s", self.id, self.path)

    def _on_pause(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        self.reply(cseq, 200, {"Session": self.session})

    def _on_teardown(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        self.reply(cseq, 200, {"Session": self.session})
        self.close()


class RtspServer:
    """The server; ``start()`` runs it on a background thread, ``stop()`` closes every connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8554, auth: str | None = None) -> None:
        self.host = host
        self.port = port
        self._auth = None if not auth else "Basic " + base64.b64encode(auth.encode("utf-8")).decode("ascii")
        self._paths: dict[str, _Path] = {}
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --------------------------------------------------------------------------- forwarding

    def _forward(self, publisher: _Conn, channel: int, payload: bytes) -> None:
        entry = self._paths.get(publisher.path or "")
        if entry is None or entry.publisher is not publisher:
            return
        track = publisher.channel_track.get(channel)
        if track is None:
            return
        key = track if channel % 2 == 0 else -1 - track
        for reader in list(entry.readers):
            if reader.playing:
                reader.send_interleaved(key, payload)

    def _detach(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        entry = self._paths.get(conn.path or "")
        if entry is None:
            return
        if entry.publisher is conn:
            del self._paths[entry.name]
            log.info("rtsp server: publisher left /%s; closing its %d reader(s)", entry.name, len(entry.readers))
            for reader in list(entry.readers):
                reader.close()
        else:
            entry.readers.discard(conn)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(self, reader, writer)
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
        return sorted(self._paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamdp.live.rtsp_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554, help="0 picks a free port (printed)")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process is gone")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    parent = os.getppid()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="rtsp-server: %(message)s")
    try:
        server = RtspServer(args.host, args.port, auth=os.environ.get("STREAMDP_RTSP_AUTH") or None).start()
    except OSError as exc:
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

