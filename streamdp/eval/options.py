"""What an evaluation run is given (``EvalOptions``) and what it returns (``EvalRun``, the raw records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dataset import EvalSet
from .settings import Setting


@dataclass
class EvalOptions:
    config_path: Path | None = None
    base_overrides: dict[str, Any] = field(default_factory=dict)
    adversaries: tuple[str, ...] = ("dlib", "facenet")
    workers: int = 1
    pad: float = 0.25
    cache_dir: Path | None = None
    video_tracks: int = 0
    video_frames: int = 12
    seed: int | None = None  # mechanisms' noise: tests only
    progress: bool = True  # tqdm bars (a terminal)
    progress_lines: bool = False  # plain periodic lines instead (a log file: no terminal)


@dataclass
class EvalRun:
    dataset: EvalSet
    settings: list[Setting]
    adversaries: list[dict[str, Any]]
    gallery: dict[str, Any]
    probes: list[dict[str, Any]]
    video: list[dict[str, Any]]
    timings: dict[str, float]
    options: EvalOptions
    model: dict[str, str] | None = None
    video_error: str | None = None
