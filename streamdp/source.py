"""Decoding: a video file -> ``Frame`` s (RGB, with the input's own timestamps), or one still image.

Decoding is strictly streaming (one packet, one frame at a time). A packet that fails to decode
is skipped and counted (``VideoSource.corrupt_frames``); a truncated file yields what it can.
Rotation metadata is *reported* (``VideoInfo.rotation``) but not applied to pixels: the sink
copies it to the output, so players rotate the anonymized video exactly as they did the input.
The one exception is a plain 180° turn: the detector does not find upside-down faces, so such
frames are turned upright here and the output carries no rotation (it displays the same, and
its frames keep their size). Frames smaller than ``MIN_FRAME_SIDE`` on a side are refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .decode import DEFAULT_FPS, MIN_FRAME_SIDE, decode_frames, error_reason, stream_fps, to_rgb
from .errors import InputError
from .media import open_error
from .types import Frame

log = logging.getLogger(__name__)

_MAX_DEMUX_RECOVERIES = 64  # demuxer errors we step over before treating the rest as unreadable


@dataclass
class VideoInfo:
    """What the rest of the pipeline (and the sink) needs to know about an input video."""

    width: int
    height: int
    fps: Fraction  # average frame rate (guessed when the container does not say)
    time_base: Fraction  # of the video stream; ``Frame.pts`` are in these units
    frame_count: int | None  # from the container, or estimated from duration * fps; None if unknown
    duration_s: float | None
    # Degrees the decoded picture must be turned *clockwise* to display upright: 0, 90, 180 or 270.
    # Same convention as the legacy ``rotate`` tag; ffprobe's display-matrix "rotation" is the
    # counter-clockwise angle, i.e. ``-rotation`` (ffprobe says -90 where this says 90).
    rotation: int
    codec: str
    has_audio: bool
    # Raw FFmpeg display matrix (9 x int32, may include flips) when the input has one.
    display_matrix: tuple[int, ...] | None = None
    pix_fmt: str | None = None
    # FFmpeg enum values (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic)
    colorspace: int = 2
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2
    sample_aspect_ratio: Fraction | None = None
    start_pts: int | None = None  # pts of the first decoded frame
    container_format: str = ""
    stream_index: int = 0  # index of the video stream in the input container


def _display_matrix(frame) -> tuple[int, ...] | None:
    import av.sidedata.sidedata as sd

    try:
        entry = frame.side_data.get(sd.Type.DISPLAYMATRIX)
    except (KeyError, ValueError, TypeError):
        entry = None
    if entry is None:
        return None
    raw = np.frombuffer(bytes(entry), dtype=np.int32)
    if raw.size != 9:
        return None
    return tuple(int(v) for v in raw)


def _cw_rotation_from_ccw(ccw: float) -> int:
    if ccw is None or (isinstance(ccw, float) and math.isnan(ccw)):
        return 0
    return int(round(-float(ccw) / 90.0)) * 90 % 360


def _plain_half_turn(matrix: tuple[int, ...] | None) -> bool:
    """Whether a display matrix is a 180° rotation with no flip, scaling or shear."""
    if matrix is None:
        return True  # only the legacy ``rotate`` tag said 180
    a, b, _, c, d = matrix[:5]
    return a == d < 0 and b == c == 0


def _rotation_tag(stream) -> int | None:
    tag = (stream.metadata or {}).get("rotate")
    if tag is None:
        return None
    try:
        return int(round(float(tag) / 90.0)) * 90 % 360
    except ValueError:
        return None


class VideoSource:
    """A video file opened for streaming decode.

    ``VideoSource(path)`` validates the file and decodes its first frame (so ``info`` can report
    rotation and colour properties); ``frames()`` then yields every frame in order, once.
    """

    def __init__(self, path: str | Path, threads: str | int = "auto") -> None:
        import av

        self.path = Path(path)
        self.corrupt_frames = 0  # packets that failed to decode (their frames are lost)
        self.frames_read = 0
        self._iterated = False
        self._half_turn = False  # frames are turned 180° upright as they are decoded
        if not self.path.exists():
            raise InputError(f"input not found: {self.path}")
        if self.path.is_dir():
            raise InputError(f"not a readable video or image: {self.path} (a folder)")
        try:
            self._container = av.open(str(self.path), metadata_errors="ignore")
        except FileNotFoundError:
            raise InputError(f"input not found: {self.path}") from None
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise open_error(self.path, exc) from None
        try:
            self._init(threads)
        except BaseException:
            self._container.close()
            raise

    def _init(self, threads: str | int) -> None:
        import av

        c = self._container
        if c.format.name in ("tty", "bin", "xbin", "adf", "idf"):
            raise InputError(f"not a readable video or image: {self.path} (not a media file)")
        videos = [
            s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)
        ]
        if not videos:
            if not len(c.streams):
                raise InputError(f"no video frames in {self.path} (the file holds no streams)")
            raise InputError(f"no video stream in {self.path}")
        st = videos[0]
        self._stream = st
        ctx = st.codec_context
        if ctx is None:
            raise InputError(f"no decoder for the video codec of {self.path}")
        ctx.thread_type = "AUTO"
        ctx.thread_count = 0 if threads in ("auto", None, 0) else int(threads)
        self._ctx = ctx

        self._decoded = self._decode()
        first = next(self._decoded, None)
        if first is None:
            extra = f" ({self.corrupt_frames} undecodable packets)" if self.corrupt_frames else ""
            raise InputError(f"no video frames in {self.path}{extra}")
        self._first = first
        if min(first.width, first.height) < MIN_FRAME_SIDE:
            raise InputError(f"video frames of {first.width}x{first.height} in {self.path} are too small to "
                             f"anonymize (at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE} pixels)")

        tb = st.time_base or Fraction(1, 90000)
        fps = stream_fps(st, lo=1e-9) or DEFAULT_FPS
        duration_s: float | None = None
        if st.duration:
            duration_s = float(st.duration * tb)
        elif c.duration:
            duration_s = c.duration / 1_000_000
        frame_count: int | None = int(st.frames) if st.frames and st.frames > 0 else None
        if frame_count is None and duration_s:
            frame_count = max(1, int(round(duration_s * float(fps))))

        matrix = _display_matrix(first)
        tag = _rotation_tag(st)
        if matrix is not None:
            rotation = _cw_rotation_from_ccw(first.rotation)
        elif tag is not None:
            rotation = tag
        else:
            rotation = 0
        if rotation == 180 and _plain_half_turn(matrix):
            # upside-down faces go undetected: hand on upright pixels and write no rotation
            self._half_turn, rotation, matrix = True, 0, None

        self.info = VideoInfo(
            width=int(first.width),
            height=int(first.height),
            fps=Fraction(fps),
            time_base=Fraction(tb),
            frame_count=frame_count,
            duration_s=duration_s,
            rotation=rotation,
            codec=ctx.name,
            has_audio=len(c.streams.audio) > 0,
            display_matrix=matrix,
            pix_fmt=first.format.name,
            colorspace=int(first.colorspace),
            color_range=int(first.color_range),
            color_primaries=int(first.color_primaries),
            color_trc=int(first.color_trc),
            sample_aspect_ratio=st.sample_aspect_ratio or None,
            start_pts=first.pts,
            container_format=c.format.name,
            stream_index=st.index,
        )

    # ------------------------------------------------------------------------------- decoding

    def _decode(self) -> Iterator[Any]:
        return decode_frames(self._container, self._stream, on_bad_packet=self._bad_packet,
                             demux_recoveries=_MAX_DEMUX_RECOVERIES, label=str(self.path))

    def _bad_packet(self, exc: BaseException) -> None:
        self.corrupt_frames += 1
        log.debug("skipping undecodable packet in %s: %s", self.path, error_reason(exc))

    def frames(self) -> Iterator[Frame]:
        """Every decoded frame in order, as RGB ``Frame`` s carrying the input's pts (single use)."""
        if self._iterated:
            raise RuntimeError("VideoSource.frames() can only be iterated once")
        self._iterated = True
        tb = self.info.time_base
        step = max(1, int(round(1 / (self.info.fps * tb)))) if self.info.fps else 1
        last_pts: int | None = None
        index = 0
        first, self._first = self._first, None

        def chain():
            yield first
            yield from self._decoded

        for av_frame in chain():
            pts = av_frame.pts
            if pts is None:
                pts = av_frame.dts
            if pts is None:
                pts = 0 if last_pts is None else last_pts + step
            last_pts = pts
            image = to_rgb(av_frame)
            if self._half_turn:
                image = np.ascontiguousarray(image[::-1, ::-1])
            self.frames_read = index + 1
            yield Frame(index=index, image=image, pts=int(pts), time_base=tb)
            index += 1

    # ------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            self._container = None
            self._decoded = iter(())
            container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_image(path: str | Path) -> Frame:
    """A still image as an RGB ``Frame`` (EXIF orientation applied, alpha dropped)."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is None or bgr.size == 0:
        raise InputError(f"not a readable video or image: {path} (not a decodable image)")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return Frame(index=0, image=np.ascontiguousarray(rgb))
