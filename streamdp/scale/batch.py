"""``streamdp batch``: an archive of files anonymized on Ray, resumable, one failure isolated.

The driver walks the inputs lazily and keeps exactly one file in flight per worker actor (the
back-pressure: the walk advances only when a worker is free, so neither the listing nor the
queue of tasks grows with the archive)::

    iter_jobs() ──► done already? (output + per-file report) ──► skipped, counted as resumed
                    │ no: clear what a half-done attempt left
                    ▼
              [idle actor] ── process(job) ──► per-file report on disk ──► slim entry to the driver
                                                                              │
              aggregate report (files, frames, faces, epsilon, failures) ◄───┘

Each actor is a ``worker.FileWorker`` in its own process: models load once per process, the
mechanism (and so the privacy ledger) is fresh per file. A file's exception comes back as an
error entry; a worker that dies (a crash in native code) fails only the file it was on and is
replaced. Files are not split: a long file is one task (see the README).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .archive import BatchJob, clear_half_done, finished_entry
from .worker import CountingFileWorker, error_entry, slim_entry

POLL_S = 0.5  # how often the driver wakes to update the progress bar


class FrameCounter:
    """Frames done by all workers since the driver last asked (a tiny actor)."""

    def __init__(self) -> None:
        self.frames = 0

    def add(self, n: int) -> None:
        self.frames += n

    def take(self) -> int:
        n, self.frames = self.frames, 0
        return n


@dataclass
class BatchOutcome:
    entries: list[dict[str, Any]] = field(default_factory=list)  # slim entries, in completion order
    interrupted: bool = False

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["status"] == "error"]

    @property
    def resumed(self) -> int:
        return sum(bool(e.get("resumed")) for e in self.entries)


class _Progress:
    """Two tqdm bars on stderr: files (the total is unknown: the walk is lazy) and frames."""

    def __init__(self, enabled: bool) -> None:
        self.files = self.frames = None
        if enabled:
            from tqdm import tqdm

            self.files = tqdm(unit="file", desc="files", position=0, dynamic_ncols=True)
            self.frames = tqdm(unit="frame", desc="frames", position=1, dynamic_ncols=True)

    def file_done(self, failed: int) -> None:
        if self.files is not None:
            self.files.update(1)
            if failed:
                self.files.set_postfix(failed=failed)

    def add_frames(self, n: int) -> None:
        if self.frames is not None and n:
            self.frames.update(n)

    def close(self) -> None:
        for bar in (self.files, self.frames):
            if bar is not None:
                bar.close()


class _Pool:
    """``size`` worker actors, each with at most one file; a dead one is replaced."""

    def __init__(self, ray: Any, size: int, config_dump: dict[str, Any], counter: Any, cpus: float,
                 worker: type = CountingFileWorker) -> None:
        self.ray = ray
        self._new = lambda: ray.remote(num_cpus=cpus)(worker).remote(config_dump, counter, os.getcwd())
        self.idle = [self._new() for _ in range(size)]
        self.running: dict[Any, tuple[Any, BatchJob]] = {}

    def submit(self, job: BatchJob) -> None:
        actor = self.idle.pop()
        self.running[actor.process.remote(job)] = (actor, job)

    def finished(self, timeout: float) -> Iterator[dict[str, Any]]:
        """Entries of the files finished within ``timeout`` seconds."""
        ready, _ = self.ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout)
        for ref in ready:
            actor, job = self.running.pop(ref)
            try:
                entry = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as exc:
                # The process died on this file (native crash, out of memory): only this file fails.
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                entry = error_entry(job, f"worker process died on this file ({reason[:200]})")
                self.ray.kill(actor)
                actor = self._new()
            self.idle.append(actor)
            yield entry


def run_batch(jobs: Iterable[BatchJob], config_dump: dict[str, Any], connect: Callable[[], tuple[Any, int]],
              progress: bool = False, worker: type = CountingFileWorker, metrics: Any = None) -> BatchOutcome:
    """Run every job that is not done yet (on ``worker`` actors: a ``CountingFileWorker``). ``connect()`` starts (or joins) Ray and says how many
    workers to use; it is called at the first file that needs work, so a run with everything
    done already never starts Ray. Ctrl-C stops; the files in flight are redone by the next run.
    ``metrics``: a ``streamdp.metrics.BatchMetrics`` fed with every finished file and the frames."""
    outcome = BatchOutcome()
    bar = _Progress(progress)
    pending = iter(jobs)
    pool: _Pool | None = None
    counter: Any = None

    def record(entry: dict[str, Any]) -> None:
        outcome.entries.append(entry)
        bar.file_done(len(outcome.failures))
        if metrics is not None:
            metrics.file_done(entry)

    try:
        job = next(pending, None)
        while job is not None or (pool is not None and pool.running):
            while job is not None and (pool is None or pool.idle):
                done = finished_entry(job)
                if done is not None:
                    record({**slim_entry(done), "resumed": True})
                else:
                    if pool is None:
                        ray, workers = connect()
                        counter = ray.remote(num_cpus=0)(FrameCounter).remote()
                        pool = _Pool(ray, workers, config_dump, counter, cpus=1, worker=worker)
                    clear_half_done(job)
                    pool.submit(job)
                job = next(pending, None)
            if pool is None or not pool.running:
                continue
            for entry in pool.finished(POLL_S):
                record(entry)
            frames = pool.ray.get(counter.take.remote())
            bar.add_frames(frames)
            if metrics is not None:
                metrics.add_frames(frames)
    except KeyboardInterrupt:
        # The files in flight die with the actors at Ray's shutdown; the next run redoes them.
        outcome.interrupted = True
    finally:
        bar.close()
    return outcome
