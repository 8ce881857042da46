"""Encoding: anonymized RGB frames -> an output video that is the input with only the pixels changed.

What is kept from the input:

* the video timestamps: the encoder and the output stream use the input video stream's time base
  and every frame keeps its pts, so variable frame rate stays exact (frame count out == in);
* the rotation metadata (display matrix), pixel aspect ratio and colour description;
* every audio stream (and subtitle stream), packet for packet and byte for byte (no re-encode),
  interleaved with the video while it is encoded. Only when the output container cannot hold an
  audio codec (e.g. PCM in .mp4) is that stream transcoded (to AAC, or Opus for .webm), and
  ``notes`` says so.

Container-level metadata (creation time, GPS location, device make...) is deliberately *not*
copied: this is an anonymizer.

The output is written to a hidden temp file beside ``dst`` and renamed onto it only when
complete (``close``); ``abort`` removes it; ``finish_partial`` (Ctrl-C) finalizes what was encoded
so far as ``<stem>.partial<ext>``.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from .config import OutputConfig
from .errors import ConfigError, OutputError
from .aux_streams import AuxStreams, packet_time
from .decode import DEFAULT_FPS, error_reason
from .encode import SWS_COLORSPACE, add_video_stream, generous_bitrate, quality_options, video_frame
from .media import atomic_output
from .source import VideoInfo
from .types import Frame

log = logging.getLogger(__name__)

# Containers whose video timestamps are frame counts: VFR timing cannot be kept there.
_CFR_FORMATS = {"avi"}
_MOV_FORMATS = {"mov", "mp4", "ipod", "3gp", "3g2", "psp", "ismv", "f4v"}
_VIDEO_FALLBACKS = {  # tried in order when the configured codec does not fit the container
    "webm": ["libvpx-vp9", "libvpx", "libsvtav1"],
    "ogg": ["libtheora", "libvpx"],
    "ogv": ["libtheora", "libvpx"],
    "avi": ["libx264", "mpeg4"],
    "asf": ["libx264", "msmpeg4v3"],
}


def _needs_even(pix_fmt: str) -> tuple[bool, bool]:
    """(even width needed, even height needed) for a chroma-subsampled pixel format."""
    p = pix_fmt
    if "420" in p or p.startswith(("nv12", "nv21", "p010", "p016")):
        return True, True
    if "422" in p or "411" in p or p.startswith(("nv16", "yuyv", "uyvy")):
        return True, False
    return False, False


class VideoSink:
    """Encode frames to ``dst`` keeping the input's timing, rotation and audio (see module doc)."""

    def __init__(
        self,
        dst: str | Path,
        source_path: str | Path,
        info: VideoInfo,
        cfg: OutputConfig | None = None,
        threads: str | int = "auto",
    ) -> None:
        self.dst = Path(dst)
        self.source_path = Path(source_path)
        self.info = info
        self.cfg = cfg or OutputConfig()
        self.threads = threads
        self.notes: list[str] = []
        self.frames_written = 0
        self.pts_adjusted = 0  # frames whose pts had to be nudged (non-increasing input pts)
        self.codec = ""
        self._out = None
        self._aux: AuxStreams | None = None  # the input's audio/subtitles, when copied
        self._closed = False
        self._last_pts: int | None = None
        self._last_video_time: Fraction | None = None
        self._tmp = atomic_output(self.dst)
        try:
            self._open()
        except BaseException:
            self._teardown()
            self._tmp.discard()
            raise

    # ------------------------------------------------------------------------------- set-up

    def _open(self) -> None:
        import av

        try:
            self._out = av.open(str(self._tmp.path), mode="w")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(f"cannot write output {self.dst}: {error_reason(exc)}") from None
        self._format = self._out.format.name.split(",")[0]
        try:
            self._supported = self._out.supported_codecs
        except Exception:  # pragma: no cover - very old PyAV
            self._supported = set()
        self._cfr = self._format in _CFR_FORMATS
        self._setup_video()
        if self.cfg.copy_audio or self.cfg.copy_subtitles:
            aux = AuxStreams(self.source_path, self._out, self.dst, self.cfg, self._container_takes, self.notes)
            if aux.active:
                self._aux = aux
                self._set_movie_timescale()

    def _container_takes(self, codec_name: str | None = None, template=None) -> bool:
        """Whether this output format accepts a stream (a codec name, or a copy of ``template``).

        ``supported_codecs`` only knows containers with codec tag tables (MP4, MKV...): for MPEG-TS,
        Ogg and others "not listed" may still work, and "unknown" may fail only when the header is
        written. So we ask the muxer itself: write a header with just that stream into memory.
        """
        import io

        import av

        name = codec_name or (template.codec_context.name if template.codec_context else None)
        try:
            if name and name in self._supported:
                return True
        except TypeError:  # pragma: no cover
            pass
        try:
            with av.open(io.BytesIO(), "w", format=self._out.format.name) as probe:
                if template is not None:
                    probe.add_stream_from_template(template)
                else:
                    kw = {"width": self.info.width, "height": self.info.height} if av.Codec(name, "w").type == "video" else {}
                    probe.add_mux_stream(name, **kw)
                probe.start_encoding()
        except Exception:
            return False
        return True

    def _pick_codec(self, wanted: str) -> str:
        import av

        try:
            codec_obj = av.Codec(wanted, "w")
        except (ValueError, av.FFmpegError):
            codec_obj = None
        if codec_obj is None or codec_obj.type != "video":
            raise ConfigError(f"output codec {wanted!r} is not a video encoder available in this FFmpeg build")
        if self._container_takes(codec_obj.name):
            return codec_obj.name  # e.g. "hevc" -> "libx265", so the options below apply
        for cand in _VIDEO_FALLBACKS.get(self._format, []) + ["libx264"]:
            if cand in av.codecs_available and self._container_takes(cand):
                self.notes.append(
                    f"video codec {wanted} cannot be stored in {self.dst.suffix} files; encoded with {cand} instead"
                )
                return cand
        return self._fallback_codec(wanted)

    def _fallback_codec(self, wanted: str) -> str:
        default = self._out.default_video_codec
        self.notes.append(
            f"video codec {wanted} cannot be stored in {self.dst.suffix} files; encoded with {default} instead"
        )
        return default

    def _setup_video(self) -> None:
        import av

        info, cfg = self.info, self.cfg
        codec = self._pick_codec(cfg.codec)
        self.codec = codec
        codec_obj = av.Codec(codec, "w")
        formats = [f.name for f in (codec_obj.video_formats or [])]
        pix_fmt = cfg.pix_fmt
        if formats and pix_fmt not in formats:
            alt = next((f for f in ("yuv420p", "yuv444p", "rgb24", "bgr24") if f in formats), formats[0])
            self.notes.append(f"{codec} cannot encode pixel format {pix_fmt}; using {alt}")
            pix_fmt = alt
        self.pix_fmt = pix_fmt
        even_w, even_h = _needs_even(pix_fmt)
        self._pad = (info.height % 2 if even_h else 0, info.width % 2 if even_w else 0)
        width, height = info.width + self._pad[1], info.height + self._pad[0]
        if any(self._pad):
            self.notes.append(
                f"{info.width}x{info.height} has odd dimensions, which {pix_fmt} cannot hold; "
                f"padded to {width}x{height} by repeating the edge pixels"
            )

        fps = info.fps if info.fps and info.fps > 0 else DEFAULT_FPS
        if self._cfr:
            enc_tb = Fraction(1, 1) / fps
            self.notes.append(
                f"{self.dst.suffix} stores a constant frame rate: timestamps rounded to {float(fps):.3f} fps"
            )
        else:
            enc_tb = info.time_base
        self._enc_tb = enc_tb
        self._step = max(1, int(round(1 / (fps * enc_tb))))  # one frame, in encoder ticks

        bit_rate = int(cfg.bitrate) if cfg.bitrate else 0
        options, bit_rate = quality_options(codec, cfg.crf, cfg.preset, bit_rate, (width, height), float(fps),
                                            self.notes)
        try:
            vs = add_video_stream(self._out, codec, fps, enc_tb, (width, height), pix_fmt, options, bit_rate)
        except (av.FFmpegError, ValueError) as exc:
            default = self._out.default_video_codec
            if codec == default:
                raise OutputError(f"cannot encode {codec} into {self.dst}: {error_reason(exc)}") from None
            self.codec = codec = self._fallback_codec(codec)
            bit_rate = bit_rate or generous_bitrate(width, height, float(fps))
            fmts = [f.name for f in (av.Codec(codec, "w").video_formats or [])]
            if fmts and pix_fmt not in fmts:
                self.pix_fmt = pix_fmt = "yuv420p" if "yuv420p" in fmts else fmts[0]
            try:
                vs = add_video_stream(self._out, codec, fps, enc_tb, (width, height), pix_fmt, {}, bit_rate)
            except (av.FFmpegError, ValueError) as exc2:
                raise OutputError(f"cannot encode {codec} into {self.dst}: {error_reason(exc2)}") from None
        ctx = vs.codec_context
        if codec == "libx265" and self._format in _MOV_FORMATS:
            try:
                ctx.codec_tag = "hvc1"  # what Apple players require (FFmpeg defaults to hev1)
            except (AttributeError, ValueError):  # pragma: no cover
                pass
        ctx.thread_count = 0 if self.threads in ("auto", None, 0) else int(self.threads)
        if info.sample_aspect_ratio and info.sample_aspect_ratio != 1:
            ctx.sample_aspect_ratio = info.sample_aspect_ratio
        # Colour description: convert RGB back with the input's matrix/range, and say so in the VUI.
        self._sws_cs = SWS_COLORSPACE.get(info.colorspace)
        self._range = info.color_range if info.color_range in (1, 2) else None
        try:
            if info.colorspace != 2:
                ctx.colorspace = info.colorspace
            if self._range:
                ctx.color_range = self._range
            if info.color_primaries != 2:
                ctx.color_primaries = info.color_primaries
            if info.color_trc != 2:
                ctx.color_trc = info.color_trc
        except (AttributeError, ValueError, TypeError):  # pragma: no cover
            pass
        if info.display_matrix is not None:
            vs.set_display_matrix(info.display_matrix)
        elif info.rotation:
            vs.set_display_rotation(-info.rotation)  # PyAV wants counter-clockwise degrees
        self._vs = vs

    def _set_movie_timescale(self) -> None:
        """MP4/MOV edit lists (a track's start offset) are in the movie timescale, 1/1000 s by
        default, which would shift a copied audio track that starts at, say, 105918/44100 s by up
        to half a millisecond. Use a timescale in which every track's timestamps are exact."""
        if self._format not in _MOV_FORMATS:
            return
        ts = Fraction(self._enc_tb).denominator
        for tb in self._aux.time_bases() if self._aux is not None else []:
            ts = math.lcm(ts, tb.denominator)
        if 1000 < ts <= 2**31 - 1:
            self._out.container_options["movie_timescale"] = str(ts)

    # ------------------------------------------------------------------------------ writing

    def write(self, frame: Frame) -> None:
        """Encode one RGB frame at its own pts (frames must come in presentation order)."""
        import av

        if self._closed:
            raise RuntimeError("VideoSink is closed")
        img = frame.image
        if img.ndim != 3 or img.shape[2] != 3 or img.shape[:2] != (self.info.height, self.info.width):
            raise ValueError(
                f"frame {frame.index} is {img.shape}, expected ({self.info.height}, {self.info.width}, 3)"
            )
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        if any(self._pad):
            img = np.pad(img, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        pts = self._frame_pts(frame)
        try:
            vf = video_frame(img, self.pix_fmt, self._sws_cs, self._range)
            vf.pts = pts
            vf.time_base = self._enc_tb
            for packet in self._vs.encode(vf):
                self._mux_video(packet)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"encoding {self.dst} failed: {error_reason(exc)}") from None
        self.frames_written += 1
        self._last_pts = pts

    def _frame_pts(self, frame: Frame) -> int:
        if self._cfr:
            if frame.pts is not None and frame.time_base:
                pts = int(round(frame.pts * frame.time_base / self._enc_tb))
            else:
                pts = self.frames_written
        elif frame.pts is not None:
            pts = int(frame.pts)
            if frame.time_base and Fraction(frame.time_base) != self._enc_tb:
                pts = int(round(frame.pts * Fraction(frame.time_base) / self._enc_tb))
        else:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        if self._last_pts is not None and pts <= self._last_pts:
            # A broken input (timestamps repeat or jump back): keep the frame, one frame later.
            pts = self._last_pts + self._step
            self.pts_adjusted += 1
        return pts

    def _mux_video(self, packet) -> None:
        t = packet_time(packet)
        if t is not None and self._aux is not None:
            self._aux.mux_until(t)
        self._out.mux(packet)
        if packet.pts is not None and packet.time_base is not None:
            end = (packet.pts + (packet.duration or 0)) * packet.time_base
            if self._last_video_time is None or end > self._last_video_time:
                self._last_video_time = end

    def _finalize(self, aux_limit: Fraction | None, all_aux: bool) -> None:
        import av

        try:
            for packet in self._vs.encode(None):
                self._mux_video(packet)
            if self._aux is not None:
                self._aux.mux_until(None if all_aux else aux_limit)
                self._aux.flush()
            self._out.close()
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"encoding {self.dst} failed: {error_reason(exc)}") from None
        finally:
            self._out = None
            self._closed = True
            self._close_aux()
        if self.pts_adjusted:
            self.notes.append(f"{self.pts_adjusted} frame(s) had non-increasing timestamps; nudged forward")

    def close(self) -> Path:
        """Finish the file (flush, copy the remaining audio) and move it to ``dst``; returns ``dst``."""
        if self._closed:
            return self.dst
        if self.frames_written == 0:
            self.abort()
            raise OutputError(f"no frames were written to {self.dst}")
        try:
            self._finalize(None, all_aux=True)
        except BaseException:
            self.abort()
            raise
        return self._tmp.commit()

    def finish_partial(self) -> Path | None:
        """After an interruption: finalize what was encoded so far as ``<stem>.partial<ext>``.

        Audio is cut where the video ends. Returns the path, or ``None`` when nothing was encoded.
        """
        if self._closed:
            return None
        if self.frames_written == 0:
            self.abort()
            return None
        partial = self.dst.with_name(f"{self.dst.stem}.partial{self.dst.suffix}")
        try:
            self._finalize(self._last_video_time, all_aux=False)
        except BaseException:
            self.abort()
            raise
        return self._tmp.commit(partial)

    def abort(self) -> None:
        """Drop everything: close the files and delete the temp output (``dst`` is never touched)."""
        self._closed = True
        self._teardown()
        self._tmp.discard()

    def _close_aux(self) -> None:
        aux, self._aux = self._aux, None
        if aux is not None:
            aux.close()

    def _teardown(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            try:
                out.close()
            except Exception:
                pass
        self._close_aux()

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def write_image(dst: str | Path, image_rgb: np.ndarray, cfg: OutputConfig | None = None) -> Path:
    """Write an RGB image to ``dst`` in the format its extension names, atomically."""
    import cv2

    cfg = cfg or OutputConfig()
    dst = Path(dst)
    ext = dst.suffix.lower()
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(cfg.jpeg_quality)]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(cfg.jpeg_quality)]
    img = np.ascontiguousarray(image_rgb)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    try:
        ok, buf = cv2.imencode(ext, bgr, params)
    except cv2.error as exc:
        raise OutputError(f"cannot encode image {dst}: {error_reason(exc)}") from None
    if not ok:
        raise OutputError(f"cannot encode image {dst}")
    with atomic_output(dst) as tmp:
        try:
            with open(tmp, "wb") as fh:
                fh.write(buf.tobytes())
        except OSError as exc:
            raise OutputError(f"cannot write output {dst}: {error_reason(exc)}") from None
    return dst
