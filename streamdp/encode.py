"""The one encoder setup, for files (``sink.py``, also a live recording) and live publishing
(``live/publisher.py``): codec options, the video stream, and the colour path from RGB.

A file is encoded for quality (constant quality, the configured preset); a live stream for
latency (no B-frames, no lookahead, a fixed short GOP). Both go through ``add_video_stream`` and
``video_frame``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

_PRESET_TO_CPU_USED = {
    "ultrafast": 8, "superfast": 7, "veryfast": 6, "faster": 5, "fast": 4,
    "medium": 3, "slow": 2, "slower": 1, "veryslow": 0, "placebo": 0,
}  # fmt: skip
_PRESET_TO_SVT = {
    "ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8,
    "medium": 7, "slow": 5, "slower": 4, "veryslow": 2, "placebo": 0,
}  # fmt: skip
# AVColorSpace -> swscale colour matrix name (PyAV's reformat wants SWS_CS_* names).
SWS_COLORSPACE = {1: "itu709", 4: "fcc", 5: "itu601", 6: "itu601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}


def generous_bitrate(width: int, height: int, fps: float) -> int:
    """For encoders without a constant-quality knob: a generous bitrate for the frame size."""
    return int(max(500_000, width * height * float(fps) * 0.2))


def quality_options(
    codec: str, crf: int | None, preset: str | None, bit_rate: int, size: tuple[int, int], fps: float,
    notes: list[str],
) -> tuple[dict[str, str], int]:
    """File encoding: (codec options, bit rate) for constant quality ``crf`` (or ``bit_rate``)."""
    options: dict[str, str] = {}
    if codec in ("libx264", "libx265", "libx264rgb"):
        if not bit_rate and crf is not None:
            if crf > 51:
                notes.append(f"crf {crf} is out of range for {codec}; using 51")
                crf = 51
            options["crf"] = str(crf)
        if preset:
            options["preset"] = preset
        if codec == "libx265":
            options["x265-params"] = "log-level=error"
    elif codec in ("libvpx-vp9", "libvpx"):
        if not bit_rate and crf is not None:
            options["crf"] = str(min(crf, 63))
            options["b"] = "0"
        options["deadline"] = "good"
        options["cpu-used"] = str(_PRESET_TO_CPU_USED.get(preset or "", 4))
        options["row-mt"] = "1"
    elif codec == "libsvtav1":
        if not bit_rate and crf is not None:
            options["crf"] = str(min(crf, 63))
        options["preset"] = str(_PRESET_TO_SVT.get(preset or "", 8))
    elif not bit_rate:
        bit_rate = generous_bitrate(*size, fps)
    return options, bit_rate


def low_latency_x264(preset: str, crf: int, fps: float, gop_seconds: float, max_bitrate: int | None) -> dict[str, str]:
    """Live encoding: libx264 with no B-frames, no lookahead and a fixed GOP (a receiver joining
    mid-stream waits at most one GOP), headers repeated at every key frame."""
    gop = max(1, int(round(gop_seconds * fps)))
    opts = {
        "preset": preset,
        "tune": "zerolatency",
        "crf": str(crf),
        "bf": "0",
        "g": str(gop),
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1",
    }
    if max_bitrate:
        opts["maxrate"] = str(max_bitrate)
        opts["bufsize"] = str(max_bitrate)  # about one second of VBV buffer
    return opts


def add_video_stream(
    out: Any, codec: str, fps: Fraction, time_base: Fraction, size: tuple[int, int], pix_fmt: str,
    options: dict[str, str], bit_rate: int = 0,
) -> Any:
    """Add a video stream to the output container ``out`` with everything set before encoding."""
    vs = out.add_stream(codec, rate=fps, options=options, time_base=time_base)
    vs.width, vs.height = size
    vs.pix_fmt = pix_fmt
    if bit_rate:
        vs.bit_rate = bit_rate
    vs.codec_context.time_base = time_base
    vs.time_base = time_base
    return vs


def video_frame(
    image: np.ndarray, pix_fmt: str = "yuv420p", colorspace: str | None = None, color_range: int | None = None,
) -> Any:
    """RGB uint8 -> a PyAV frame in ``pix_fmt``. BT.601 limited-range 4:2:0 (what most outputs
    are) goes through OpenCV's RGB->I420, ~10x faster than swscale's unaccelerated rgb24 path;
    anything else through swscale with the given colour matrix and range."""
    import av
    import cv2

    if pix_fmt == "yuv420p" and colorspace in (None, "itu601") and color_range in (None, 1) \
            and image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0:
        return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return vf.reformat(format=pix_fmt, dst_colorspace=colorspace, dst_color_range=color_range)
