"""One RTSP client connection of the built-in server: the request parser, the method handlers
(publisher: ANNOUNCE/SETUP/RECORD; reader: DESCRIBE/SETUP/PLAY), the auth check (the verdict is
``rtsp_auth.RtspAuth``'s), and the interleaved RTP/RTCP frames (RFC 2326 section 10.12) it reads
or writes. The shared state (which paths are published, the forwarding between connections) is
the server's (``rtsp_server.RtspServer``)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .rtsp_server import RtspServer

log = logging.getLogger(__package__ + ".rtsp_server")  # one logger for the whole server, as before the split

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
class PublishedPath:
    name: str
    sdp: str
    controls: list[str]  # a=control of each media section, in order
    publisher: RtspConnection
    readers: set[RtspConnection] = field(default_factory=set)


def media_controls(sdp: str) -> list[str]:
    controls: list[str] = []
    in_media = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_media = True
            controls.append(f"trackID={len(controls)}")
        elif in_media and line.startswith("a=control:"):
            controls[-1] = line.split(":", 1)[1].strip()
    return controls


def path_of(url: str) -> str:
    try:
        return urlsplit(url).path.strip("/")
    except ValueError:
        return ""


class RtspConnection:
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

    def reply(self, cseq: str | None, status: int, headers: dict[str, str | list[str]] | None = None,
              body: str = "") -> None:
        lines = [f"RTSP/1.0 {status} {_REASONS.get(status, 'Error')}"]
        if cseq is not None:
            lines.append(f"CSeq: {cseq}")
        lines.append("Server: streamdp")
        for k, v in (headers or {}).items():
            lines.extend(f"{k}: {one}" for one in ([v] if isinstance(v, str) else v))  # a list: one line each
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
                        self.server.forward(self, head[0], payload)
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
            self.server.detach(self)

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
        if self.server.auth is not None and method != "OPTIONS":
            verdict = self.server.auth.check(method, url, headers.get("authorization", ""), owner=self.id)
            if not verdict.ok:
                self.reply(cseq, 401, {"WWW-Authenticate": verdict.challenges})
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
        path = path_of(url)
        if not path or not body.strip():
            self.reply(cseq, 400)
            return
        if self.server.published.get(path) is not None:
            self.reply(cseq, 453)  # someone already publishes this path
            return
        self.role, self.path, self.pending_sdp = "publisher", path, body
        self.reply(cseq, 200)

    def _on_describe(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        path = path_of(url)
        entry = self.server.published.get(path)
        if entry is None or not entry.publisher.playing:
            self.reply(cseq, 404)
            return
        base = url if url.endswith("/") else url + "/"
        self.reply(cseq, 200, {"Content-Base": base, "Content-Type": "application/sdp"}, entry.sdp)

    def _track_for(self, url: str, controls: list[str], path: str) -> int | None:
        rest = path_of(url)[len(path):].strip("/")
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
            controls = media_controls(self.pending_sdp)
            track = self._track_for(url, controls, self.path)
            if track is None:
                self.reply(cseq, 404)
                return
            ch = interleaved if interleaved is not None else 2 * track
            self.channel_track[ch] = track
            self.channel_track[ch + 1] = track  # RTCP
        else:
            path = next((p for p in self.server.published if path_of(url) == p or path_of(url).startswith(p + "/")), None)
            entry = self.server.published.get(path) if path else None
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
        if self.server.published.get(self.path) is not None:
            self.reply(cseq, 453)
            return
        self.server.published[self.path] = PublishedPath(self.path, self.pending_sdp, media_controls(self.pending_sdp), self)
        self.playing = True
        self.reply(cseq, 200, {"Session": self.session})
        log.info("rtsp server: publisher %d started /%s", self.id, self.path)

    def _on_play(self, cseq, url, headers, body) -> None:  # type: ignore[no-untyped-def]
        entry = self.server.published.get(self.path or "")
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
