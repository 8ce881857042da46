"""Runs the planned jobs (one file, or every file of a folder) and gathers their report entries."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .errors import StreamdpError
from .builder import build_mechanism, build_privatizer
from .pipeline import run_image, run_video
from .progress import Progress
from .report import all_files_one_person, file_entry

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    entries: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(e["status"] == "error" for e in self.entries)

    def summary_lines(self) -> list[str]:
        lines = []
        for e in self.entries:
            if e["status"] == "error":
                lines.append(f"FAILED {e['input']}: {e['error']}")
                continue
            if e["status"] == "partial" and not e.get("partial"):
                lines.append(f"interrupted before any frame of {e['input']} was written: nothing written")
                continue
            tag = "PARTIAL (interrupted) " if e["status"] == "partial" else ""
            fps = f", {e['fps']:.1f} fps" if e.get("fps") and e["kind"] == "video" else ""
            n_faces, n_tracks = e["faces"]["faces_detected"], e["tracks"].get("total", 0)
            lines.append(
                f"{tag}wrote {e['output']} ({e['frames_out']} frame{'s' * (e['frames_out'] != 1)}, "
                f"{n_faces} face{'s' * (n_faces != 1)} detected, {n_tracks} track{'s' * (n_tracks != 1)}{fps})"
            )
            privacy = e.get("privacy") or {}
            worst = privacy.get("worst_case")
            if worst:
                eps = worst["epsilon"]  # a number, or "inf" (the ledger's JSON-safe infinity)
                why = "a fixed seed" if "noise_source" in privacy else "no noise"
                eps_s = f"inf (no guarantee: {why})" if eps == "inf" else f"{eps:g}"
                scope = privacy.get("scope")
                scope_s = f", covering only the {scope}" if scope not in (None, "latent", "none") else ""
                lines.append(
                    f"  privacy: worst track {worst['releases']} release{'s' * (worst['releases'] != 1)}, "
                    f"epsilon {eps_s}{scope_s} (per-track ledger in the report)"
                )
        if len(self.entries) > 1:
            lines.append(f"{len(self.entries) - self.failed}/{len(self.entries)} files done")
            total = all_files_one_person(self.entries)
            if total:
                rel = total["releases"]
                eps = "inf" if total["epsilon"] == "inf" else f"{total['epsilon']:g}"
                lines.append(
                    f"privacy over all files: {rel} release{'s' * (rel != 1)}; a person in every one of them "
                    f"spends at most epsilon {eps} (all_files_one_person in the report)"
                )
        return lines


def run_jobs(jobs: list[Any], config: Config, progress: Progress) -> Outcome:
    """Run every job. A single file's failure raises; in a folder run it is recorded and skipped."""
    outcome = Outcome()
    single = len(jobs) == 1
    for job in jobs:
        progress.start_file(job.src)
        # A mechanism per file: its privacy ledger is per video (track ids restart per file).
        mechanism = build_mechanism(config)
        privatizer = build_privatizer(config, mechanism)
        try:
            if job.kind == "video":
                result = run_video(job.src, job.dst, config, privatizer, progress.advance, progress.set_total)
            else:
                result = run_image(job.src, job.dst, config, privatizer)
                progress.advance(1)
        except StreamdpError as exc:
            if single:
                raise
            log.warning("%s: %s", job.src, exc)
            outcome.entries.append({"input": str(job.src), "output": str(job.dst), "kind": job.kind,
                                    "status": "error", "error": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - reported as one line, the traceback with -v
            log.debug("failure on %s", job.src, exc_info=True)
            message = f"failed on {job.src}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if single:
                raise StreamdpError(message) from exc
            outcome.entries.append({"input": str(job.src), "output": str(job.dst), "kind": job.kind,
                                    "status": "error", "error": message})
            continue
        finally:
            mechanism.close()
        outcome.entries.append(file_entry(job.src, job.dst, job.kind, result, mechanism))
        if result.interrupted:
            outcome.interrupted = True
            break
    return outcome
