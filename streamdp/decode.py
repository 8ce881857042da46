"""The one decode loop and the one colour path, for files (``source.py``) and live inputs
(``live/sources.py``): demux, decode, skip what cannot be decoded, convert to RGB.

Files and live streams differ only in what a demuxer error means: a file steps over it and
resumes (a damaged region), a live stream raises it so that its source reconnects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# The frame rate assumed when an input states none (or an absurd one): files, live, the tracker.
DEFAULT_FPS = Fraction(25)

# The smallest frame side anonymized (files and the Python API): the detector's tiles need some
# pixels to letterbox (it divided by zero on a 1x1 video), and nothing smaller can show a face.
MIN_FRAME_SIDE = 16


def error_reason(exc: BaseException) -> str:
    """A one-line reason for an FFmpeg/OS error, without the path (callers name the file)."""
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(msg).split())


def stream_fps(stream: Any, lo: float = 0.5, hi: float = 1000.0) -> Fraction | None:
    """The stream's frame rate (average, else guessed, else base), None when it states no sane one."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        try:
            if rate and lo <= float(rate) <= hi:
                return Fraction(rate)
        except (TypeError, ZeroDivisionError, ValueError):
            continue
    return None


def decode_frames(
    container: Any,
    stream: Any,
    *,
    on_bad_packet: Callable[[BaseException], None],
    demux_recoveries: int = 0,
    label: str = "input",
) -> Iterator[Any]:
    """Yield the stream's decoded PyAV frames in order, the decoder flushed at the end.

    A packet that fails to decode is skipped (``on_bad_packet``: its frame is lost). A demuxer
    error is stepped over up to ``demux_recoveries`` times (files), after which the rest counts as
    unreadable and the loop ends; with 0 (live) it is raised to the caller.
    """
    import av

    ctx = stream.codec_context
    recoveries = 0
    flushed = False
    while True:
        try:
            for packet in container.demux(stream):
                if packet.size == 0 and packet.dts is None:  # the demuxer's flush packet
                    flushed = True
                    packet = None
                try:
                    frames = ctx.decode(packet)
                except av.EOFError:
                    frames = []
                except (av.FFmpegError, ValueError) as exc:
                    on_bad_packet(exc)
                    continue
                yield from frames
            break
        except av.FFmpegError as exc:  # demuxer error: step over it, resume where it stopped
            if not demux_recoveries:
                raise
            recoveries += 1
            log.warning("read error in %s: %s", label, error_reason(exc))
            if recoveries > demux_recoveries:
                break
    if not flushed:
        try:
            yield from ctx.decode(None)
        except (av.FFmpegError, ValueError):
            pass


# AVColorSpace values OpenCV's YUV->RGB matches: unspecified (swscale then assumes BT.601 too),
# BT.470BG and SMPTE 170M (both BT.601). AVColorRange: unspecified or MPEG (limited).
_BT601_SPACES = (2, 5, 6)
_LIMITED_RANGES = (0, 1)


def to_rgb(av_frame: Any) -> np.ndarray:
    """Decoded frame -> C-contiguous RGB uint8 (H, W, 3).

    The common case (8-bit 4:2:0, BT.601, limited range) goes through OpenCV, ~10x faster than
    swscale's unaccelerated rgb24 path and equal to it within a few levels (chroma upsampling
    differs at edges; tests/test_io.py). Everything else (BT.709, full range, 10-bit, 4:4:4...)
    goes through swscale with the frame's own colour description.
    """
    import cv2

    if (
        av_frame.format.name == "yuv420p"
        and av_frame.colorspace in _BT601_SPACES
        and av_frame.color_range in _LIMITED_RANGES
        and av_frame.width % 2 == 0
        and av_frame.height % 2 == 0
    ):
        image = cv2.cvtColor(av_frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    else:
        image = av_frame.to_ndarray(format="rgb24", src_color_range=av_frame.color_range or None)
    return image if image.flags.c_contiguous else np.ascontiguousarray(image)
