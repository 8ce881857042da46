"""The input's audio and subtitle streams in the output: copied bit-exact where the container
takes them (else audio transcoded, subtitles dropped, each with a note), their packets interleaved
by time with the video (``VideoSink`` calls ``mux_until`` before each video packet)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from .config import OutputConfig
from .decode import error_reason
from .errors import InputError

log = logging.getLogger(__name__)


def packet_time(packet: Any) -> Fraction | None:
    """A packet's decode time in seconds (pts when it has no dts), None when unknown."""
    ts = packet.dts if packet.dts is not None else packet.pts
    if ts is None or packet.time_base is None:
        return None
    return ts * packet.time_base


class AuxStreams:
    """The audio/subtitle streams of ``source_path`` carried into the output container ``out``."""

    def __init__(self, source_path: Path, out: Any, dst: Path, cfg: OutputConfig,
                 container_takes: Callable[..., bool], notes: list[str]) -> None:
        import av

        self.source_path, self._out, self.dst, self.cfg = source_path, out, dst, cfg
        self._container_takes = container_takes
        self.notes = notes
        self._aux: Any = None
        self._aux_iter: Any = None
        self._aux_pending: Any = None
        self._aux_map: dict[int, tuple] = {}  # input stream index -> (mode, out stream, decoder)
        try:
            aux = av.open(str(self.source_path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"not a readable video or image: {self.source_path} ({error_reason(exc)})") from None
        self._aux = aux
        try:
            self._select(aux)
        except BaseException:
            self.close()
            raise

    def _select(self, aux: Any) -> None:
        import av

        wanted = []
        for s in aux.streams:
            if s.type == "audio" and self.cfg.copy_audio:
                wanted.append(s)
            elif s.type == "subtitle" and self.cfg.copy_subtitles:
                wanted.append(s)
            elif s.type == "video" or s.type in ("data", "attachment", "unknown"):
                s.discard = av.stream.Discard.all
        dropped_data = sum(1 for s in aux.streams if s.type in ("data", "attachment", "unknown"))
        if dropped_data:
            self.notes.append(f"{dropped_data} data/attachment stream(s) of the input not copied")
        for s in wanted:
            out_s = None
            if s.codec_context is not None and self._container_takes(template=s):
                try:
                    out_s = self._out.add_stream_from_template(s)
                except (ValueError, av.FFmpegError):
                    out_s = None
            if out_s is not None:
                self._copy_stream_meta(s, out_s)
                self._aux_map[s.index] = ("copy", out_s, None)
                continue
            cname = s.codec_context.name if s.codec_context is not None else "unknown"
            if s.type == "subtitle":
                self.notes.append(
                    f"subtitle stream #{s.index} ({cname}) cannot be stored in {self.dst.suffix} files; dropped"
                )
                s.discard = av.stream.Discard.all
                continue
            self._setup_audio_transcode(s, cname)
        if self._aux_map:
            self._aux_iter = self._aux_packets([aux.streams[i] for i in self._aux_map])
        else:
            aux.close()
            self._aux = None

    @property
    def active(self) -> bool:
        """Whether any stream is being carried over (else this object holds nothing open)."""
        return bool(self._aux_map)

    def time_bases(self) -> list[Fraction]:
        return [Fraction(out_s.time_base) for _m, out_s, _d in self._aux_map.values() if out_s.time_base]

    def _setup_audio_transcode(self, s, cname: str) -> None:
        import av

        target = None
        for cand in ("aac", "libopus", "libvorbis", "libmp3lame", "flac", self._out.default_audio_codec):
            if cand and cand in av.codecs_available and self._container_takes(cand):
                target = cand
                break
        if target is None or s.codec_context is None:
            self.notes.append(f"audio stream #{s.index} ({cname}) cannot be stored in {self.dst.suffix} files; dropped")
            s.discard = av.stream.Discard.all
            return
        rate = s.codec_context.sample_rate or 48000
        if target == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
            rate = 48000
        try:
            enc = self._out.add_stream(target, rate=rate)
            layout = s.codec_context.layout
            if layout is not None and layout.nb_channels:
                enc.layout = layout if layout.nb_channels <= 2 or target != "libmp3lame" else "stereo"
            enc.bit_rate = 192_000 if (layout is None or layout.nb_channels <= 2) else 384_000
        except (ValueError, av.FFmpegError) as exc:
            self.notes.append(f"audio stream #{s.index} ({cname}) could not be transcoded ({error_reason(exc)}); dropped")
            s.discard = av.stream.Discard.all
            return
        self._copy_stream_meta(s, enc)
        msg = (
            f"audio stream #{s.index} ({cname}) cannot be stored in {self.dst.suffix} files; "
            f"transcoded to {target} (not bit-exact)"
        )
        log.warning(msg)
        self.notes.append(msg)
        self._aux_map[s.index] = ("transcode", enc, s.codec_context)

    @staticmethod
    def _copy_stream_meta(src: Any, dst: Any) -> None:
        meta = {k: v for k, v in (src.metadata or {}).items() if k in ("language", "title", "handler_name")}
        if meta:
            try:
                dst.metadata.update(meta)
            except (AttributeError, TypeError):  # pragma: no cover
                pass

    def _aux_packets(self, streams):
        import av

        recoveries = 0
        while True:
            try:
                for packet in self._aux.demux(streams):
                    if packet.size == 0 and packet.dts is None:
                        continue  # demuxer's end-of-stream marker
                    yield packet
                return
            except av.FFmpegError as exc:
                recoveries += 1
                log.warning("read error in %s audio: %s", self.source_path, error_reason(exc))
                if recoveries > 64:
                    return

    def mux_until(self, limit: Fraction | None) -> None:
        """Mux audio/subtitle packets up to time ``limit`` (all of them when ``None``)."""
        if self._aux_iter is None:
            return
        while True:
            packet = self._aux_pending
            if packet is None:
                packet = next(self._aux_iter, None)
                if packet is None:
                    self._aux_iter = None
                    return
            t = packet_time(packet)
            if limit is not None and t is not None and t > limit:
                self._aux_pending = packet
                return
            self._aux_pending = None
            self._mux_aux_packet(packet)

    def _mux_aux_packet(self, packet) -> None:
        import av

        mode, out_s, dec = self._aux_map[packet.stream.index]
        if mode == "copy":
            if packet.dts is None and packet.pts is None:
                return
            packet.stream = out_s
            self._out.mux(packet)
            return
        try:
            frames = dec.decode(packet)
        except av.FFmpegError:
            return
        for fr in frames:
            for p in out_s.encode(fr):
                self._out.mux(p)

    def flush(self) -> None:
        """Flush the audio transcoders (copied streams need nothing)."""
        for mode, out_s, dec in self._aux_map.values():
            if mode != "transcode":
                continue
            for p in out_s.encode(None):
                self._out.mux(p)

    def close(self) -> None:
        aux, self._aux = self._aux, None
        self._aux_iter = None
        self._aux_pending = None
        if aux is not None:
            try:
                aux.close()
            except Exception:  # pragma: no cover
                pass
