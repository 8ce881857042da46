"""What a batch run has to do: the archive walked lazily, and each file's resume state.

The walk is a generator over ``os.scandir`` (one directory entry at a time, never the archive's
whole listing), so a run over millions of files starts at once and its memory does not grow with
the archive. Each file's state lives beside the outputs, in ``OUT/.streamdp-batch/``: a file is
done when its output exists *and* its per-file report says so (same size as the output it
describes); anything else (an output without a report, an encoder's temp file left by a killed
worker) is half-done and is redone from scratch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from ..media import IMAGE_EXTS, TMP_MARKER, VIDEO_EXTS, MediaKind, check_writable_dir

STATE_DIR = ".streamdp-batch"  # hidden: a later walk over OUT skips it


@dataclass(frozen=True)
class BatchJob:
    """One file: where it comes from, where its output and its per-file report go."""

    src: str
    dst: str
    kind: MediaKind
    report: str  # per-file report (JSON), written only after the output is complete


def _kind(name: str) -> MediaKind | None:
    ext = os.path.splitext(name)[1].lower()
    return "video" if ext in VIDEO_EXTS else "image" if ext in IMAGE_EXTS else None


def _walk(folder: Path) -> Iterator[Path]:
    """Media files under ``folder`` (recursively, hidden entries skipped), in scandir order."""
    try:
        entries = os.scandir(folder)
    except OSError:
        return  # an unreadable sub-folder is skipped, as os.walk does
    with entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from _walk(Path(entry.path))
                elif entry.is_file() and _kind(entry.name) is not None:
                    yield Path(entry.path)
            except OSError:
                continue


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_inputs(inputs: list[Path], out: Path) -> None:
    """Fail before any work: inputs exist, no two map onto the same outputs, OUT is writable and
    not inside an input folder (its outputs would be walked as inputs)."""
    if not inputs:
        raise InputError("batch needs at least one input file or folder")
    out_res = out.resolve()
    names: dict[str, Path] = {}
    for path in inputs:
        if not path.exists():
            raise InputError(f"input not found: {path}")
        res = path.resolve()
        if res == out_res or (path.is_dir() and _is_within(out_res, res)):
            raise OutputError(f"output {out} is inside the input {path}")
        if not path.is_dir() and _kind(path.name) is None:
            raise InputError(f"not a video or image (by its extension): {path}")
        if len(inputs) > 1:
            if path.name in names:
                raise InputError(f"two inputs named {path.name!r} ({names[path.name]}, {path}) would share outputs")
            names[path.name] = path
    if out.exists() and not out.is_dir():
        raise OutputError(f"batch output must be a folder: {out} is a file")
    check_writable_dir(out)


def iter_jobs(inputs: list[Path], out: Path) -> Iterator[BatchJob]:
    """Every file of ``inputs``, lazily. One folder input maps onto ``OUT/<relative path>`` (as
    ``streamdp run`` does); with several inputs each keeps its name: ``OUT/<name>[/<relative>]``."""
    state = out / STATE_DIR
    for path in inputs:
        if path.is_dir():
            base = out if len(inputs) == 1 else out / path.name
            pairs = ((src, base / src.relative_to(path)) for src in _walk(path))
        else:
            pairs = iter([(path, out / path.name)])
        for src, dst in pairs:
            report = state / dst.relative_to(out)
            yield BatchJob(str(src), str(dst), _kind(src.name) or "video", str(report) + ".json")


# ------------------------------------------------------------------------------------- resume


def finished_entry(job: BatchJob) -> dict[str, Any] | None:
    """The per-file report entry when ``job`` is done (output complete and described), else None."""
    try:
        entry = json.loads(Path(job.report).read_text(encoding="utf-8"))
        size = os.stat(job.dst).st_size
    except (OSError, ValueError):
        return None
    if entry.get("status") != "ok" or entry.get("output") != job.dst or entry.get("output_bytes") != size:
        return None
    return entry


def clear_half_done(job: BatchJob) -> None:
    """Remove what an interrupted attempt left of ``job`` (report, output), so it is redone from
    scratch and never looks finished half-way. Encoder temp files: ``sweep_temp_files``."""
    for path in (Path(job.report), Path(job.dst)):
        path.unlink(missing_ok=True)


def sweep_temp_files(out: Path) -> int:
    """Delete the atomic writers' temp files under ``out`` (left by a killed worker: a finished
    output never has one). One lazy walk at the start of a run; returns how many went. Two runs
    must not share an output folder at the same time (one would sweep the other's)."""

    def temps(folder: Path) -> Iterator[Path]:
        try:
            entries = os.scandir(folder)
        except OSError:
            return
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        yield from temps(Path(entry.path))
                    elif TMP_MARKER in entry.name:
                        yield Path(entry.path)
                except OSError:
                    continue

    removed = 0
    for path in temps(out):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
