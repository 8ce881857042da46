"""The batch worker: one file at a time, in a process that lives as long as the run.

A worker process keeps its process-level caches (the dp-image generator, converted model files)
across files, so models load once per worker; the mechanism itself is built fresh per file,
because its privacy ledger is per file (track ids restart in every video). The output is written
atomically by the file pipeline; the per-file report is written after it, so a report on disk
always describes a complete output.

``FileWorker`` is plain Python (tests and a Ray actor use the same class: ``batch.py`` wraps it
with ``ray.remote``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .archive import BatchJob

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5  # frames are reported to the driver at most this often


def slim_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """What the aggregate report keeps of a file's entry: counts and the privacy totals, not the
    per-track ledgers and stage timings (those stay in the per-file report)."""
    privacy = entry.get("privacy") or {}
    keep = ("input", "output", "kind", "status", "error", "frames_in", "frames_out", "faces", "wall_s", "fps",
            "report", "resumed")
    out = {k: entry[k] for k in keep if k in entry}
    out["tracks"] = {"total": (entry.get("tracks") or {}).get("total", 0)}
    if privacy:
        out["privacy"] = {k: privacy.get(k) for k in ("scope", "worst_case", "all_tracks_one_person")}
    return out


def error_entry(job: BatchJob, message: str) -> dict[str, Any]:
    return {"input": job.src, "output": job.dst, "kind": job.kind, "status": "error", "error": message}


class FileWorker:
    """Anonymizes files with one configuration; ``process`` never raises for a file's fault."""

    def __init__(self, config_dump: dict[str, Any], on_frames: Callable[[int], None] | None = None,
                 cwd: str | None = None) -> None:
        from ..config import Config

        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)  # relative paths in the config (a model folder) mean what they meant to the driver

        # The CLI's main() does this for the file pipeline's threads (see cli.main).
        sys.setswitchinterval(0.001)
        self.config = Config.model_validate(config_dump)
        self.on_frames = on_frames
        self._pending = 0
        self._last_flush = time.monotonic()

    def pid(self) -> int:
        return os.getpid()

    def _frame(self, n: int) -> None:
        self._pending += n
        now = time.monotonic()
        if self.on_frames is not None and now - self._last_flush >= PROGRESS_EVERY_S:
            self.on_frames(self._pending)
            self._pending, self._last_flush = 0, now

    def _flush(self) -> None:
        if self.on_frames is not None and self._pending:
            self.on_frames(self._pending)
        self._pending = 0

    def process(self, job: BatchJob) -> dict[str, Any]:
        """Anonymize ``job`` and write its per-file report; the slim entry (or an error entry)."""
        from ..errors import StreamdpError

        try:
            entry = self._run(job)
        except StreamdpError as exc:
            return error_entry(job, str(exc))
        except Exception as exc:  # noqa: BLE001 - one line in the aggregate, the traceback in the worker's log
            log.warning("failure on %s", job.src, exc_info=True)
            first = str(exc).splitlines()[0] if str(exc) else ""
            return error_entry(job, f"{type(exc).__name__}: {first}")
        finally:
            self._flush()
        return slim_entry(entry)

    def _run(self, job: BatchJob) -> dict[str, Any]:
        from ..builder import build_mechanism, build_privatizer
        from ..errors import StreamdpError
        from ..media import probe_kind
        from ..pipeline import run_image, run_video
        from ..report import file_entry, write_json_atomic

        src, dst = Path(job.src), Path(job.dst)
        kind = probe_kind(src)  # one line saying why, for a file that is not what its name says
        mechanism = build_mechanism(self.config)
        try:
            privatizer = build_privatizer(self.config, mechanism)
            if kind == "video":
                result = run_video(src, dst, self.config, privatizer, self._frame)
            else:
                result = run_image(src, dst, self.config, privatizer)
                self._frame(1)
        finally:
            mechanism.close()
        if result.interrupted:
            raise StreamdpError(f"interrupted on {src}")
        entry = file_entry(src, dst, kind, result, mechanism)
        entry["output_bytes"] = dst.stat().st_size
        entry["report"] = job.report
        write_json_atomic(Path(job.report), entry)
        return entry


class CountingFileWorker(FileWorker):
    """A ``FileWorker`` that reports its frames to a counter actor (``batch.FrameCounter``)."""

    def __init__(self, config_dump: dict[str, Any], counter: Any, cwd: str | None = None) -> None:
        super().__init__(config_dump, lambda n: counter.add.remote(n), cwd)
