"""streamdp as a library: anonymize a file, or push frames and get them back anonymized.

``anonymize_file`` is ``streamdp run`` on one file: the same up-front checks, stages, look-back and
atomic output (nothing at ``dst`` unless it is complete). ``Anonymizer`` takes frames you already
have (numpy RGB arrays) one at a time and returns each anonymized, with its face boxes, with the
same fail-closed cover as the pipelines: a mechanism that fails covers that frame's faces with
solid fill; a detector that fails raises, and no frame comes back.

Configuration, for both: ``config`` (a YAML path, a preset name such as ``"recorded"``, a
``Config``, or None for the defaults), then ``mechanism``, then keyword overrides: a dotted key
with ``__`` for the dots (``detect__min_confidence=0.3``), or ``epsilon`` / ``release_interval``
as on the command line. Every value is validated by the one schema (``streamdp.config``); a bad
one raises ``ConfigError`` naming the key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from .config import Config, load_config
from .decode import MIN_FRAME_SIDE
from .errors import ConfigError, InputError
from .mechanisms import Mechanism
from .presets import config_path
from .types import Frame

__all__ = ["AnonymizedFrame", "Anonymizer", "Face", "FrameError", "anonymize_file", "build_config"]

# The command line's short flags, as keyword arguments.
_SHORTCUTS = {"epsilon": "mechanism.dp_image.epsilon", "release_interval": "mechanism.dp_image.release_interval"}
_MIN_SIDE = MIN_FRAME_SIDE  # the smallest frame side accepted (as the CLIs' --size and file inputs)
_US = Fraction(1, 1_000_000)


class FrameError(InputError, ValueError):
    """A pushed frame is not an ``HxWx3 uint8`` RGB array of the stream's size, or its time is
    not after the previous frame's. A ``ValueError`` and a ``streamdp`` input error."""


def _dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    return {_SHORTCUTS.get(key, key.replace("__", ".")): value for key, value in overrides.items()}


def _apply_to(config: Config, overrides: dict[str, Any]) -> Config:
    """A copy of ``config`` with dotted ``overrides`` set (each validated on assignment)."""
    out = config.model_copy(deep=True)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node: Any = out
        try:
            for key in parents:
                node = getattr(node, key)
            if leaf not in type(node).model_fields:
                raise AttributeError(leaf)
            setattr(node, leaf, value)
        except AttributeError:
            raise ConfigError(f"invalid override: unknown key {dotted!r}") from None
        except ValidationError as err:
            text = str(err.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"invalid override {dotted}: {text}") from None
    return out


def build_config(config: Config | str | Path | None = None, mechanism: str | None = None,
                 **overrides: Any) -> Config:
    """The validated ``Config``: defaults < ``config`` (file, preset name or ``Config``) < ``mechanism``
    < ``overrides`` (``section__key=value``; ``epsilon``, ``release_interval``)."""
    dotted = _dotted(overrides)
    if mechanism is not None:
        dotted = {"mechanism.name": mechanism, **dotted}
    if isinstance(config, Config):
        return _apply_to(config, dotted)
    return load_config(config_path(config) if config is not None else None, dotted)


# ---------------------------------------------------------------------------------- files


def anonymize_file(src: str | Path, dst: str | Path, *, config: Config | str | Path | None = None,
                   mechanism: str | None = None, report: str | Path | None = None, **overrides: Any) -> dict[str, Any]:
    """Anonymize one video or image file into ``dst``, as ``streamdp run SRC -o DST`` does.

    Returns the file's report entry (frames, faces, tracks, stage timings, the mechanism and, for
    dp-image, the privacy spent per track: ``entry["privacy"]``). ``report``: also write the full
    JSON report there. Raises a ``streamdp.StreamdpError`` (one clear line) for a missing,
    unreadable or corrupt input, an unwritable ``dst``, ``dst`` equal to ``src`` or a bad
    configuration; nothing is then left at ``dst``. A ``KeyboardInterrupt`` propagates; frames
    already encoded are kept as a playable ``NAME.partial.EXT`` beside ``dst``, as on the CLI.
    """
    from .media import plan_jobs
    from .progress import Progress
    from .report import build_report, check_report_path, write_json_atomic
    from .runner import run_jobs

    cfg = build_config(config, mechanism, **overrides)
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        raise InputError(f"anonymize_file takes one file, not a folder: {src} (streamdp run or streamdp batch take folders)")
    jobs = plan_jobs(src, dst)
    report_path = Path(report) if report is not None else None
    check_report_path(report_path, [src])
    started = datetime.now(timezone.utc)
    outcome = run_jobs(jobs, cfg, Progress(enabled=False))
    if report_path is not None:
        command = ["anonymize_file", str(src), str(dst)]
        write_json_atomic(report_path, build_report(command, cfg.model_dump(mode="json"), outcome.entries, started))
    if outcome.interrupted:
        raise KeyboardInterrupt
    return outcome.entries[0]


# ------------------------------------------------------------------------------ push mode


@dataclass(frozen=True)
class Face:
    """One covered face: its box as covered (margin included), in pixels of the frame."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float  # the detector's confidence (of its last detection, for a carried face)
    track_id: int  # the same person while tracked
    predicted: bool  # carried by the tracker through a frame where the detector missed it


@dataclass(frozen=True)
class AnonymizedFrame:
    """What ``Anonymizer.process`` returns for one frame."""

    image: np.ndarray  # HxWx3 uint8 RGB, a new array (the input is never modified)
    faces: tuple[Face, ...]  # every face covered in it
    index: int  # 0, 1, 2... in push order
    fail_closed: bool = False  # the mechanism failed: these faces are covered with solid fill instead

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) float32 xyxy: the faces' boxes as one array."""
        return np.array([f.box for f in self.faces], dtype=np.float32).reshape(-1, 4)


class Anonymizer:
    """Push frames, get them anonymized: one stream, one frame at a time, synchronously.

    ``process(rgb)`` detects and tracks the faces of an ``HxWx3 uint8`` RGB frame (every frame the
    size of the first) and returns an ``AnonymizedFrame``: a new image with every face covered by
    the mechanism, and the boxes covered. The guarantees are the pipelines': faces the detector
    lost are carried by the tracker and still covered; a mechanism that raises leaves its faces
    covered with solid fill (``fail_closed``), never raw; a detector that raises raises here and
    no frame comes back. OpenCV's frames are BGR: convert them (``cv2.cvtColor(..., COLOR_BGR2RGB)``).

    No look-back: a pushed frame is returned before the next one is seen, so a face is covered
    from the frame it is first detected in, as live; ``anonymize_file`` also covers the frames
    before a face's first detection (``track.lookback_seconds``). The detector therefore searches
    as live does (every tile, every frame).

    ``fps`` times the tracker when ``process`` is given no ``time_s``. dp-image renders each new
    face before returning its frame (the first frame of a new person takes the generator's time).
    The privacy spent so far (dp-image: epsilon per track): ``privacy_report()``. Not thread-safe:
    one Anonymizer per stream. Use it as a context manager, or call ``close()``.
    """

    def __init__(self, config: Config | str | Path | None = None, *, mechanism: str | Mechanism | None = None,
                 fps: float = 25.0, **overrides: Any) -> None:
        """``mechanism``: a name (``pixelate``, ``dp-image``, ...) or a ``Mechanism`` of your own
        (closed with the Anonymizer); ``config`` and ``overrides`` as for ``build_config``."""
        from .builder import build_face_stage, build_mechanism, build_privatizer

        fps = float(fps)
        if not (np.isfinite(fps) and 0.0 < fps <= 1000.0):
            raise ConfigError(f"fps must be in (0, 1000], not {fps}")
        name = mechanism if isinstance(mechanism, str) else None
        self.config = build_config(config, name, **overrides)
        self.fps = fps
        self._mechanism = mechanism if isinstance(mechanism, Mechanism) else build_mechanism(self.config)
        try:
            self._privatizer = build_privatizer(self.config, self._mechanism)
            self._faces = build_face_stage(self.config, fps, lookback_frames=0.0)
        except BaseException:
            self._mechanism.close()
            raise
        self._size: tuple[int, int] | None = None  # (height, width) of the first frame
        self._index = 0
        self._last_t: float | None = None
        self._closed = False

    # -- frames

    def process(self, image: np.ndarray, time_s: float | None = None) -> AnonymizedFrame:
        """Anonymize one frame. ``time_s``: its time in seconds (increasing); default index / fps."""
        if self._closed:
            raise RuntimeError("this Anonymizer is closed")
        self._check_frame(image)
        t = self._check_time(time_s)
        frame = Frame(self._index, np.array(image, dtype=np.uint8, order="C", copy=True),
                      pts=int(round(t * 1_000_000)), time_base=_US)
        job = self._faces.process(frame)
        covered = job.faces.copy()  # as handed to the mechanism (it may change the job's boxes)
        failures = self._privatizer.failures
        if len(job.faces):
            self._privatizer.apply([job])
        self._index += 1
        self._last_t = t
        faces = tuple(
            Face(tuple(float(v) for v in covered.boxes[i]), float(covered.scores[i]),  # type: ignore[arg-type]
                 int(covered.track_ids[i]), bool(covered.predicted[i]))
            for i in range(len(covered))
        )
        return AnonymizedFrame(job.frame.image, faces, frame.index, self._privatizer.failures > failures)

    def _check_frame(self, image: Any) -> None:
        if not isinstance(image, np.ndarray):
            raise FrameError(f"a frame must be a numpy array, not {type(image).__name__}")
        if image.dtype != np.uint8:
            raise FrameError(f"a frame must be uint8 RGB, not {image.dtype}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise FrameError(f"a frame must be HxWx3 (RGB), not shape {tuple(image.shape)}")
        h, w = int(image.shape[0]), int(image.shape[1])
        if min(h, w) < _MIN_SIDE:
            raise FrameError(f"a frame must be at least {_MIN_SIDE}x{_MIN_SIDE} pixels, not {w}x{h}")
        if self._size is None:
            self._size = (h, w)
        elif self._size != (h, w):
            raise FrameError(f"every frame must be the first one's size ({self._size[1]}x{self._size[0]}), "
                             f"not {w}x{h}: a new stream needs a new Anonymizer")

    def _check_time(self, time_s: float | None) -> float:
        t = self._index / self.fps if time_s is None else float(time_s)
        if not np.isfinite(t):
            raise FrameError(f"time_s must be finite, not {time_s}")
        if self._last_t is not None and t <= self._last_t:
            raise FrameError(f"time_s must increase: {t:g} s after {self._last_t:g} s")
        return t

    # -- accounting

    def privacy_report(self) -> dict[str, Any] | None:
        """The privacy spent so far, per track (dp-image); None for mechanisms with no formal guarantee."""
        return self._mechanism.privacy_report()

    @property
    def counts(self) -> dict[str, int]:
        """Frames pushed, faces detected, covered, carried by the tracker, frames covered by the fallback."""
        counts = asdict(self._faces.counts)
        counts["frames_fail_closed"] = self._privatizer.failures
        counts["frames"] = self._index
        return counts

    # -- lifetime

    def close(self) -> None:
        """Release the detector and the mechanism's models (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._faces.close()
        finally:
            self._mechanism.close()
            self._privatizer.fallback.close()

    def __enter__(self) -> Anonymizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
