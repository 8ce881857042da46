"""The run report (``--report FILE.json``): what was done, how fast, and what privacy it cost."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .pipeline import VideoRunResult


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"streamdp": __version__, "python": platform.python_version()}
    for dist in ("numpy", "av", "opencv-contrib-python", "mediapipe", "onnxruntime", "onnxruntime-gpu"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        import av

        out["ffmpeg"] = {name: ".".join(map(str, v[:3])) for name, v in av.library_versions.items()}
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    return out


def file_entry(src: Path, dst: Path, kind: str, result: VideoRunResult, mechanism: Any) -> dict[str, Any]:
    fps = result.frames_out / result.wall_s if result.wall_s > 0 else None
    entry: dict[str, Any] = {
        "input": str(src),
        "output": str(result.partial_path or dst),
        "kind": kind,
        "status": "partial" if result.interrupted else "ok",
        "partial": result.partial_path is not None,
        "media": result.video,
        "frames_in": result.frames_in,
        "frames_out": result.frames_out,
        "corrupt_frames_skipped": result.corrupt_frames,
        "faces": asdict(result.counts),
        "tracks": result.tracks,
        "wall_s": round(result.wall_s, 3),
        "fps": round(fps, 2) if fps else None,
        "stages": result.stage_stats,
        "mechanism": mechanism.describe(),
        "privacy": mechanism.privacy_report(),
        "notes": result.notes,
    }
    return entry


def build_report(argv: list[str], config_dump: dict[str, Any], files: list[dict[str, Any]], started: datetime) -> dict[str, Any]:
    ok = [f for f in files if f["status"] == "ok"]
    worst_eps: float | None = None
    # Every file has its own ledger (track ids restart per file): the same person in N files is N
    # releases that no single file's report sums. Basic composition over files bounds it.
    total_releases, total_eps, total_delta, any_privacy = 0, 0.0, 0.0, False
    for f in files:
        privacy = f.get("privacy") or {}
        worst = privacy.get("worst_case") or {}
        if worst.get("epsilon") is not None:
            eps = math.inf if worst["epsilon"] == "inf" else float(worst["epsilon"])
            worst_eps = eps if worst_eps is None else max(worst_eps, eps)
        every = privacy.get("all_tracks_one_person")
        if every:
            any_privacy = True
            total_releases += int(every["releases"])
            total_eps += math.inf if every["epsilon"] == "inf" else float(every["epsilon"])
            total_delta += float(every.get("delta") or 0.0)
    def num(x: float | None) -> float | str | None:
        return None if x is None else (x if math.isfinite(x) else "inf")

    return {
        "tool": "streamdp",
        "command": ["streamdp", *argv],
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "summary": {
            "files": len(files),
            "files_ok": len(ok),
            "files_failed": sum(f["status"] == "error" for f in files),
            "frames": sum(f.get("frames_out", 0) for f in files),
            "faces_detected": sum(f.get("faces", {}).get("faces_detected", 0) for f in files),
            "tracks": sum((f.get("tracks") or {}).get("total", 0) for f in files),
            "worst_case_epsilon_per_track": num(worst_eps),
            # the bound if every track of every file were the same person (basic composition)
            "all_files_one_person": {"releases": total_releases, "epsilon": num(total_eps), "delta": total_delta}
            if any_privacy
            else None,
        },
        "files": files,
        "config": config_dump,
        "versions": versions(),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "argv0": sys.argv[0]},
    }


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
