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


def _json_eps(x: float | None) -> float | str | None:
    return None if x is None else (x if math.isfinite(x) else "inf")


def all_files_one_person(files: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Releases and epsilon summed over every file's ledger: the bound if every track of every
    file were the same person (basic composition). Each file has its own ledger (track ids restart
    per file), so the same person in N files is N releases that no single file's report sums.
    None when no file has a privacy ledger."""
    totals = [t for t in ((f.get("privacy") or {}).get("all_tracks_one_person") for f in files) if t]
    if not totals:
        return None
    eps = sum(math.inf if t["epsilon"] == "inf" else float(t["epsilon"]) for t in totals)
    return {
        "releases": sum(int(t["releases"]) for t in totals),
        "epsilon": _json_eps(eps),
        "delta": sum(float(t.get("delta") or 0.0) for t in totals),
    }


def host(detect_backend: str) -> dict[str, Any]:
    """The machine a run ran on: the detector's engine depends on the CPU (``detect.backend``
    "auto": OpenVINO bf16 where the CPU has it natively, else LiteRT), so the report names both."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from .detect.backends import describe_engine

        engine = describe_engine(detect_backend)
    except Exception as exc:  # a report is written even when the engine cannot be told
        engine = f"unknown ({exc})"
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu, "detector_engine": engine,
            "argv0": sys.argv[0]}


def build_report(argv: list[str], config_dump: dict[str, Any], files: list[dict[str, Any]], started: datetime) -> dict[str, Any]:
    ok = [f for f in files if f["status"] == "ok"]
    worst_eps: float | None = None
    for f in files:
        worst = (f.get("privacy") or {}).get("worst_case") or {}
        if worst.get("epsilon") is not None:
            eps = math.inf if worst["epsilon"] == "inf" else float(worst["epsilon"])
            worst_eps = eps if worst_eps is None else max(worst_eps, eps)
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
            "worst_case_epsilon_per_track": _json_eps(worst_eps),
            "all_files_one_person": all_files_one_person(files),
        },
        "files": files,
        "config": config_dump,
        "versions": versions(),
        "host": host(str((config_dump.get("detect") or {}).get("backend", "auto"))),
    }


def check_report_path(report: Path | None, inputs: list[Path]) -> None:
    """Refuse, before any work, a report path that cannot be written: a folder, one of the
    inputs, or under a folder this user cannot write to (``OutputError``)."""
    from .errors import OutputError

    if report is None:
        return
    if report.exists() and report.is_dir():
        raise OutputError(f"report path is a folder: {report}")
    if any(report.resolve() == p.resolve() for p in inputs):
        raise OutputError(f"report path is the input: {report}")
    parent = report.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write the report under {parent}")


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
