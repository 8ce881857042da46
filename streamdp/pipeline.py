"""The file pipeline: decode -> detect+track -> privatize (micro-batched) -> encode.

Threads and bounded queues (see docs/architecture.md)::

    [decode] --frames--> [faces: detect + track] --FrameJob--> [privatize] --FrameJob--> main: [encode]

The main thread runs the sink so that Ctrl-C lands where the output file is owned.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .builder import build_face_stage
from .faces import FaceCounts
from .lookback import LookbackDilator
from .privatizer import Privatizer
from .errors import StalledError
from .stages import END, Pipeline, StageStats, Stopped, collect_batch

log = logging.getLogger(__name__)


@dataclass
class VideoRunResult:
    frames_in: int = 0
    frames_out: int = 0
    corrupt_frames: int = 0
    wall_s: float = 0.0
    partial_path: Path | None = None
    interrupted: bool = False
    stage_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: FaceCounts = field(default_factory=FaceCounts)
    tracks: dict[str, Any] = field(default_factory=dict)
    video: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_video(
    src: Path,
    dst: Path,
    config: Config,
    privatizer: Privatizer,
    on_frame: Callable[[int], None] | None = None,
    on_start: Callable[[int | None], None] | None = None,
) -> VideoRunResult:
    """Anonymize one video file. Writes ``dst`` atomically; raises on failure (nothing at ``dst``)."""
    from .sink import VideoSink
    from .source import VideoSource

    result = VideoRunResult()
    t_start = time.perf_counter()
    source = VideoSource(src, threads=config.pipeline.threads)
    info = source.info
    result.video = {
        "width": info.width,
        "height": info.height,
        "fps": float(info.fps),
        "codec": info.codec,
        "frame_count": info.frame_count,
        "duration_s": info.duration_s,
        "rotation": info.rotation,
    }
    if on_start:
        on_start(info.frame_count)
    fps = float(info.fps) or 25.0
    faces = build_face_stage(config, fps, lookback_frames=config.track.lookback_seconds * fps)
    sink = VideoSink(dst, src, info, config.output)
    pipe = Pipeline()
    qsize = config.pipeline.queue_size
    q_frames: queue.Queue = queue.Queue(qsize)
    q_jobs: queue.Queue = queue.Queue(qsize)
    q_done: queue.Queue = queue.Queue(qsize)
    decode_stats = StageStats("decode")
    encode_stats = StageStats("encode")

    def decode() -> None:
        frames = source.frames()
        try:
            while True:
                decode_stats.start()
                frame = next(frames, None)
                if frame is None:
                    break
                decode_stats.stop()
                pipe.put(q_frames, frame)
        finally:
            frames.close()
        pipe.put(q_frames, END)

    lookback = LookbackDilator(config.track.lookback_seconds, fps, config.track.coast_margin_per_second)

    def detect_track() -> None:
        while True:
            frame = pipe.get(q_frames)
            if frame is END:
                for job in lookback.flush():
                    pipe.put(q_jobs, job)
                pipe.put(q_jobs, END)
                return
            for job in lookback.push(faces.process(frame)):
                pipe.put(q_jobs, job)

    def privatize() -> None:
        while True:
            batch = collect_batch(pipe, q_jobs, config.batch.max_batch, config.batch.max_wait_ms / 1000)
            ended = batch[-1] is END
            jobs = batch[:-1] if ended else batch
            if jobs:
                privatizer.apply(jobs)
                for job in jobs:
                    pipe.put(q_done, job)
            if ended:
                pipe.put(q_done, END)
                return

    ok = False
    try:
        pipe.spawn("decode", decode)
        pipe.spawn("faces", detect_track)
        pipe.spawn("privatize", privatize)
        stall_s = config.pipeline.stall_timeout_s
        while True:
            try:
                job = pipe.get(q_done, timeout=stall_s)
            except Stopped:
                pipe.raise_if_failed()
                raise
            except queue.Empty:
                raise StalledError(
                    f"{src}: no frame finished for {stall_s:g} s after {result.frames_out} "
                    f"(stuck: {_stuck_stage(q_frames, q_jobs)}); nothing written"
                ) from None
            if job is END:
                break
            encode_stats.start()
            sink.write(job.frame)
            encode_stats.stop()
            result.frames_out += 1
            if on_frame:
                on_frame(1)
        encode_stats.start()
        sink.close()
        encode_stats.stop(0)
        ok = True
    except KeyboardInterrupt:
        result.interrupted = True
        pipe.stop()
        try:
            result.partial_path = sink.finish_partial() if result.frames_out else None
        except Exception:  # noqa: BLE001 - never leave a broken file behind
            log.debug("could not finalize the partial file", exc_info=True)
            sink.abort()
            result.partial_path = None
        if result.partial_path is None:
            sink.abort()
    finally:
        pipe.stop()
        if not ok and not result.interrupted:
            sink.abort()
        faces.close()
        source.close()
    pipe.raise_if_failed()
    result.frames_in = decode_stats.items
    result.corrupt_frames = int(getattr(source, "corrupt_frames", 0))
    result.wall_s = time.perf_counter() - t_start
    result.counts = faces.counts
    result.counts.frames_fail_closed = privatizer.failures
    result.counts.faces_lookback = lookback.faces_added
    result.tracks = {"total": faces.tracker.total_tracks, "per_track": faces.tracker.track_stats()}
    result.notes.extend(getattr(sink, "notes", []))
    for stats in (decode_stats, faces.detect_stats, faces.track_stats, privatizer.stats, encode_stats):
        result.stage_stats[stats.name] = stats.as_dict()
    return result


def _stuck_stage(q_frames: queue.Queue, q_jobs: queue.Queue) -> str:
    """Which stage holds the pipeline up, from where the frames pile up (bounded queues)."""
    if q_jobs.full():
        return "privatize (the mechanism)"
    if q_frames.full():
        return "faces (detection and tracking)"
    return "decode (the input)"


def run_image(src: Path, dst: Path, config: Config, privatizer: Privatizer) -> VideoRunResult:
    """Anonymize one still image; same stages, one frame, no threads."""
    from .sink import write_image
    from .source import read_image

    result = VideoRunResult()
    t0 = time.perf_counter()
    frame = read_image(src)
    result.video = {"width": frame.width, "height": frame.height}
    faces = build_face_stage(config, fps=1.0)
    try:
        job = faces.process(frame)
    finally:
        faces.close()
    privatizer.apply([job])
    write_image(dst, np.ascontiguousarray(job.frame.image), config.output)
    result.frames_in = result.frames_out = 1
    result.counts = faces.counts
    result.counts.frames_fail_closed = privatizer.failures
    result.tracks = {"total": faces.tracker.total_tracks, "per_track": faces.tracker.track_stats()}
    for stats in (faces.detect_stats, faces.track_stats, privatizer.stats):
        result.stage_stats[stats.name] = stats.as_dict()
    result.wall_s = time.perf_counter() - t0
    return result
