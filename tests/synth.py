"""Synthetic test media with known ground truth (built by the tests, never committed).

``make_ground_truth_video`` pastes real face photographs (LFW *evaluation* identities only, see
``splits.json``) over a textured background, moves them smoothly frame by frame, and encodes the
result with PyAV (H.264 in mp4, plus an AAC audio track). It returns what a test needs to judge an
anonymized copy: every frame's known face boxes, the video timestamps and the audio packets *as
read back from the written file* (so the comparison is against what a decoder sees, not against
what we asked the muxer for).

Other helpers build the awkward inputs: a video container with a video stream and zero packets,
and a copy of a real file with garbage written over part of its media data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

# LFW photos are 250x250 originals centre-cropped to 160x160: the face sits in the middle. The
# pasted patch keeps some hair/neck context (what a detector expects to see around a face); the
# ground-truth box is the inner face (brows to chin, cheek to cheek), which any detection box plus
# margin must cover.
LFW_PATCH = (16, 8, 144, 152)  # x0, y0, x1, y1 in the 160x160 photo: what is pasted
LFW_FACE = (40, 42, 120, 132)  # x0, y0, x1, y1 in the 160x160 photo: the known face region


@dataclass
class GroundTruth:
    path: Path
    n_frames: int
    size: tuple[int, int]  # (width, height)
    identities: list[str]
    photos: list[Path]
    # boxes[frame][face] = (x0, y0, x1, y1) ints, the inner face region of each pasted photo
    boxes: list[list[tuple[int, int, int, int]]]
    # read back from the written file
    pts: list[int] = field(default_factory=list)
    time_base: Fraction | None = None
    audio_packets: list[bytes] = field(default_factory=list)
    audio_codec: str | None = None


def eval_identities(faces_dir: Path) -> list[str]:
    splits = json.loads((faces_dir / "splits.json").read_text(encoding="utf-8"))
    return list(splits["lfw_eval_identities"])


def pick_face_photos(faces_dir: Path, n: int, seed: int = 0) -> list[tuple[str, Path]]:
    """``n`` photos of distinct evaluation identities (deterministic for a seed)."""
    names = [p for p in eval_identities(faces_dir) if (faces_dir / "lfw" / p).is_dir()]
    rng = np.random.default_rng(seed)
    out: list[tuple[str, Path]] = []
    for i in rng.permutation(len(names)):
        photos = sorted((faces_dir / "lfw" / names[i]).glob("*.jpg"))
        if photos:
            out.append((names[i], photos[0]))
        if len(out) == n:
            break
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} evaluation identities with photos under {faces_dir}")
    return out


def textured_background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """RGB uint8: a colour gradient, gentle smooth noise and a fine grain (no faces, and nothing a
    face detector mistakes for one: stronger blotchy noise or real scenes draw false positives)."""
    rng = np.random.default_rng(seed + 1000)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            60 + 120 * x / width,
            80 + 90 * y / height,
            150 - 70 * (x + y) / (width + height),
        ],
        axis=-1,
    )
    smooth = cv2.resize(rng.normal(0, 8, (height // 40 + 1, width // 40 + 1, 3)).astype(np.float32),
                        (width, height), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 5, (height, width, 3)).astype(np.float32), (0, 0), 0.7)
    return np.clip(base + smooth + fine, 0, 255).astype(np.uint8)


def _face_track(i: int, n_faces: int, t: float, width: int, height: int, pw: int, ph: int) -> tuple[int, int]:
    """Top-left corner of face ``i``'s patch at time ``t`` (s): each face in its own vertical lane,
    moving smoothly (sinusoids with different periods), never overlapping another lane."""
    lane_w = width / n_faces
    cx = lane_w * (i + 0.5) + 0.22 * (lane_w - pw) * math.sin(2 * math.pi * t / (1.6 + 0.4 * i) + i)
    cy = height / 2 + 0.40 * (height - ph) * math.sin(2 * math.pi * t / (2.2 + 0.3 * i) + 1.3 * i)
    x0 = int(round(cx - pw / 2))
    y0 = int(round(cy - ph / 2))
    return max(0, min(width - pw, x0)), max(0, min(height - ph, y0))


def _add_aac_stream(container, rate: int = 48000):
    stream = container.add_stream("aac", rate=rate)
    stream.layout = "stereo"
    stream.bit_rate = 96000
    return stream


def _audio_frames(duration_s: float, rate: int = 48000, chunk: int = 1024) -> Iterator[av.AudioFrame]:
    total = int(round(duration_s * rate))
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (start + np.arange(n)) / rate
        left = 0.3 * np.sin(2 * np.pi * 440.0 * t)
        right = 0.2 * np.sin(2 * np.pi * 660.0 * t + 0.5)
        frame = av.AudioFrame.from_ndarray(np.stack([left, right]).astype(np.float32), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        yield frame


def vfr_steps(n_frames: int, fps: int, seed: int = 0) -> list[Fraction]:
    """Irregular frame durations (s) around 1/fps: a variable-frame-rate clip."""
    rng = np.random.default_rng(seed + 7)
    choices = [Fraction(1, fps), Fraction(1, fps) * 2, Fraction(1, fps) / 2, Fraction(3, 2 * fps)]
    return [choices[int(k)] for k in rng.integers(0, len(choices), n_frames)]


def _face_patches(photos: list[Path], face_heights: tuple[int, ...]) -> tuple[list[np.ndarray], list[tuple[float, float, float, float]]]:
    """Each photo's pasted patch at its face height, and its inner face box relative to the patch."""
    px0, py0, px1, py1 = LFW_PATCH
    fx0, fy0, fx1, fy1 = LFW_FACE
    patches: list[np.ndarray] = []
    face_rel: list[tuple[float, float, float, float]] = []
    for i, photo in enumerate(photos):
        rgb = cv2.cvtColor(cv2.imread(str(photo), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        patch = rgb[py0:py1, px0:px1]
        ph = face_heights[i % len(face_heights)]
        scale = ph / patch.shape[0]
        pw = int(round(patch.shape[1] * scale))
        patches.append(cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA))
        face_rel.append(((fx0 - px0) * scale, (fy0 - py0) * scale, (fx1 - px0) * scale, (fy1 - py0) * scale))
    return patches, face_rel


def _compose(bg: np.ndarray, patches: list[np.ndarray], face_rel: list[tuple[float, float, float, float]], t: float) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The frame at time ``t`` (s) and its inner face boxes: each patch on its lane over ``bg``."""
    height, width = bg.shape[:2]
    img = bg.copy()
    boxes = []
    for i, patch in enumerate(patches):
        ph, pw = patch.shape[:2]
        x, y = _face_track(i, len(patches), t, width, height, pw, ph)
        img[y : y + ph, x : x + pw] = patch
        rx0, ry0, rx1, ry1 = face_rel[i]
        boxes.append((int(round(x + rx0)), int(round(y + ry0)), int(round(x + rx1)), int(round(y + ry1))))
    return img, boxes


def make_ground_truth_video(
    path: str | Path,
    faces_dir: Path,
    n_frames: int = 48,
    size: tuple[int, int] = (640, 360),
    fps: int = 24,
    with_audio: bool = True,
    seed: int = 0,
    n_faces: int = 3,
    vfr: bool = False,
    face_heights: tuple[int, ...] = (130, 118, 106),
    time_base: Fraction = Fraction(1, 90000),
) -> GroundTruth:
    """Write an H.264/AAC mp4 with ``n_faces`` moving LFW faces and return its ground truth.

    The video stream uses ``time_base`` (default 1/90000, so pts advance in non-unit steps);
    ``vfr=True`` makes the frame durations irregular.
    """
    path = Path(path)
    width, height = size
    picks = pick_face_photos(faces_dir, n_faces, seed)
    bg = textured_background(width, height, seed)

    patches, face_rel = _face_patches([photo for _, photo in picks], face_heights)

    if vfr:
        steps = vfr_steps(n_frames, fps, seed)
    else:
        steps = [Fraction(1, fps)] * n_frames
    times = [sum(steps[:k], Fraction(0)) for k in range(n_frames)]
    duration = float(times[-1] + steps[-1])

    boxes: list[list[tuple[int, int, int, int]]] = []
    container = av.open(str(path), mode="w")
    try:
        vstream = container.add_stream("libx264", rate=fps)
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = "yuv420p"
        vstream.time_base = time_base
        vstream.codec_context.time_base = time_base
        vstream.options = {"crf": "16", "preset": "veryfast"}
        astream = _add_aac_stream(container) if with_audio else None

        for k in range(n_frames):
            img, frame_boxes = _compose(bg, patches, face_rel, float(times[k]))
            boxes.append(frame_boxes)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = int(times[k] / time_base)
            frame.time_base = time_base
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None:
            for aframe in _audio_frames(duration):
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    finally:
        container.close()

    gt = GroundTruth(path=path, n_frames=n_frames, size=size, identities=[n for n, _ in picks],
                     photos=[p for _, p in picks], boxes=boxes)
    info = read_video_timing(path)
    gt.pts, gt.time_base = info["pts"], info["time_base"]
    if len(gt.pts) != n_frames:
        raise RuntimeError(f"synthetic video {path} reads back {len(gt.pts)} frames, wrote {n_frames}")
    if with_audio:
        gt.audio_codec, gt.audio_packets = audio_packets(path)
    return gt


# ------------------------------------------------------------------------------------ reading back


def read_video_timing(path: str | Path) -> dict:
    """Decoded frames' pts (presentation order) and the video stream's time base."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        pts = [f.pts for f in c.decode(st)]
        return {"pts": pts, "time_base": Fraction(st.time_base), "codec": st.codec_context.name,
                "width": st.codec_context.width, "height": st.codec_context.height}


def audio_packets(path: str | Path, index: int = 0) -> tuple[str | None, list[bytes]]:
    """(codec name, payload bytes of every non-empty packet) of the ``index``-th audio stream."""
    with av.open(str(path)) as c:
        if len(c.streams.audio) <= index:
            return None, []
        st = c.streams.audio[index]
        return st.codec_context.name, [bytes(p) for p in c.demux(st) if p.size]


def iter_rgb(path: str | Path) -> Iterator[tuple[int | None, Fraction, np.ndarray]]:
    """Stream (pts, time_base, HxWx3 uint8 RGB) of every decoded video frame."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        tb = Fraction(st.time_base)
        for f in c.decode(st):
            yield f.pts, tb, f.to_ndarray(format="rgb24")


def count_frames(path: str | Path) -> int:
    """Decodable video frames (packets that fail to decode are stepped over, as a player does)."""
    n = 0
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        for packet in c.demux(st):
            try:
                n += len(packet.decode())
            except av.FFmpegError:
                continue
    return n


# ---------------------------------------------------------------------------------- awkward inputs


def make_zero_frame_video(path: str | Path, size: tuple[int, int] = (320, 240)) -> Path:
    """A valid container with one H.264 video stream and not a single packet."""
    path = Path(path)
    # mp4 drops a track without samples unless the moov is written up front (empty_moov)
    with av.open(str(path), mode="w", options={"movflags": "empty_moov"}) as container:
        st = container.add_stream("libx264", rate=25)
        st.width, st.height = size
        st.pix_fmt = "yuv420p"
        container.start_encoding()
    with av.open(str(path)) as c:  # sanity: it is a video container, and it has no frames
        assert len(c.streams.video) == 1
        assert sum(1 for _ in c.decode(video=0)) == 0
    return path


def mdat_span(path: str | Path) -> tuple[int, int]:
    """(start, end) byte offsets of the payload of the top-level ``mdat`` box of an mp4/mov."""
    data = Path(path).read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            header = 16
        elif size == 0:
            size = len(data) - pos
        if kind == b"mdat":
            return pos + header, pos + size
        if size < header:
            break
        pos += size
    raise ValueError(f"no mdat box in {path}")


def corrupt_middle(src: str | Path, dst: str | Path, n_bytes: int = 4096, at: float = 0.5, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with ``n_bytes`` of random garbage written over the media data at
    fraction ``at`` of the ``mdat`` payload (container structure untouched, some frames damaged)."""
    data = bytearray(Path(src).read_bytes())
    start, end = mdat_span(src)
    off = start + int((end - start) * at)
    rng = np.random.default_rng(seed)
    data[off : off + n_bytes] = rng.integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def make_plain_video(
    path: str | Path,
    n_frames: int = 24,
    size: tuple[int, int] = (320, 240),
    fps: int = 24,
    faststart: bool = False,
    with_audio: bool = False,
    seed: int = 0,
    grain: float = 0.0,
) -> Path:
    """A short H.264 mp4 with no faces (a drifting textured background); needs no shared data.

    ``faststart=True`` puts the ``moov`` box before the media data (as web-ready files do).
    ``grain`` > 0 adds fresh noise (that std) to every frame, so that every frame costs real bytes
    (a few KB of damage then hits one or two frames, not a whole run of tiny P-frames)."""
    rng = np.random.default_rng(seed + 99)
    path = Path(path)
    width, height = size
    bg = textured_background(width + 64, height, seed)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        st = container.add_stream("libx264", rate=fps)
        st.width, st.height = width, height
        st.pix_fmt = "yuv420p"
        st.options = {"crf": "20", "preset": "veryfast"}
        astream = _add_aac_stream(container) if with_audio else None
        for k in range(n_frames):
            shift = (2 * k) % 64
            img = bg[:, shift : shift + width]
            if grain > 0:
                img = np.clip(img + rng.normal(0, grain, img.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = k
            frame.time_base = Fraction(1, fps)
            for packet in st.encode(frame):
                container.mux(packet)
        for packet in st.encode(None):
            container.mux(packet)
        if astream is not None:
            for aframe in _audio_frames(n_frames / fps):
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    return path


def ground_truth_frames(
    faces_dir: Path,
    n_frames: int = 8,
    size: tuple[int, int] = (640, 360),
    fps: int = 24,
    seed: int = 0,
    n_faces: int = 3,
    face_heights: tuple[int, ...] = (130, 118, 106),
) -> list[tuple[np.ndarray, list[tuple[int, int, int, int]]]]:
    """The frames ``make_ground_truth_video`` would encode (same faces, background and motion),
    uncompressed and in memory: ``[(rgb, inner face boxes), ...]``."""
    bg = textured_background(size[0], size[1], seed)
    picks = pick_face_photos(faces_dir, n_faces, seed)
    patches, face_rel = _face_patches([photo for _, photo in picks], face_heights)
    return [_compose(bg, patches, face_rel, k / fps) for k in range(n_frames)]
