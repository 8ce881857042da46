"""The live pipeline: one or more streams, one shared batched privatizer, deadlines, steady output.

Per stream (threads)::

    [source]  read + reconnect ──latest slot──► [faces] detect + track (FaceStage)
                   │                                 │ submit to the shared privatizer, go on with
                   │                                 │ the next frame (at most IN_FLIGHT frames held)
                   │                                 ▼ in capture order
                   │                            [finish] wait for each job until its give-up time:
                   │                            privatized, or cheap-covered copy ──latest slot──► [output]
                   │                                                                            │ paced at the
                   ▼                                                                            ▼ output rate
    (drops stale frames, counted)                                      [sink workers] RTSP / recording / preview

    [privatize]  ONE thread for all streams: collect_batch() over every stream's jobs → Privatizer.apply

Detection of frame k+1 overlaps privatization of frame k (like the file pipeline), so a stream
runs at 1/max(detect, privatize), not 1/(detect + privatize). The faces thread holds one of the
stream's ``IN_FLIGHT`` (2) places from picking a frame until the finisher has handed it on; when
both are taken (privatization is the slower stage) it waits for one before it picks the next
frame, so it always detects the newest frame (the source slot drops the stale ones, counted),
memory stays at two frames (+ their fallback copies) per stream, and latency cannot grow. The wait
is bounded: the finisher frees a place at the latest at the oldest frame's give-up time.

The search is spread over two picked frames (``detect.tile_every``; builder.LIVE_SEARCH_SPREAD),
so a detected frame is *held* (with its place) until the next picked frame is detected, and a
face that one finds first is covered in it too (``LookbackDilator`` by frame count): a frame goes
on only once all of its tiles were searched over it and its successor. One more frame per stream.

Overlap buys throughput with per-frame latency when the stages share the CPU (two cores, with
decode and encode running too): each stage runs slower while the other one runs. So the overlap
is on only while there is slack under the deadline: each stream keeps a running mean of its
frames' capture→covered time (a frame dropped late counts as the whole deadline); above
``SEQUENTIAL_ABOVE`` of the deadline the faces thread waits until nothing is in flight before it
picks the next frame (detect, then privatize, as before), below ``OVERLAP_BELOW`` it overlaps
again. Frames picked while another was in flight are counted (``frames_pipelined``).

The rules that matter live:

* A frame is published only as a ``CoveredFrame`` (``covered.py``): privatized, cheap-covered
  after a missed deadline, or with no face to cover. Never raw.
* Deadline (``live.deadline_ms``, from capture to the hand-off to the outputs): if
  privatization is not done in time, the frame's tracked faces are covered with
  ``live.fallback`` on a private copy (taken before the job is submitted: the mechanism works in
  place) and that goes out; a frame that would still reach the outputs after the deadline
  (detection too slow, a starved machine) is dropped instead, and the last anonymized frame
  repeats. Never raw, never late.
* Frames leave in capture order: one finisher per stream takes the jobs in the order they were
  submitted, frames without faces included.
* The output keeps the input's pace: a new frame goes out as soon as it is ready (at least half
  a frame interval after the previous one); when nothing new comes for 1.5 intervals (input
  stalled, reconnecting), the last anonymized frame is repeated at the output rate.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from fractions import Fraction
from typing import Any

from ..config import Config
from ..builder import build_live_face_stage, build_live_hold, build_mechanism
from ..decode import DEFAULT_FPS as _DEFAULT_FPS
from ..mechanisms import Mechanism
from ..stages import POLL_S, Pipeline, Stopped
from ..types import Frame
from . import covered
from .covered import CoveredFrame
from .stream import LiveStream, PendingFrame
from .shared_privatizer import IN_FLIGHT, LiveJob, SharedPrivatizer
from .sinks import SinkWorker

log = logging.getLogger(__name__)

MIN_GAP = 0.5  # frame intervals between two published frames, at least (unless the deadline says now)
HANDOFF_S = 0.010  # time allowed from a covered frame to its hand-off to the outputs
REPEAT_AFTER = 1.5  # frame intervals without a new frame before the last one is repeated
DEFAULT_FPS = float(_DEFAULT_FPS)
SEQUENTIAL_ABOVE = 0.75  # mean capture->covered (fraction of the deadline) above which overlap stops
OVERLAP_BELOW = 0.5  # ... and below which it starts again
LATENCY_EWMA = 0.2  # weight of each frame in that running mean (reacts within ~8 frames)
_US = Fraction(1, 1_000_000)


class LivePipeline:
    """Runs streams until stopped (signal, ``stop()``, preview window) or until every input ended."""

    def __init__(self, config: Config, mechanism: Mechanism, streams: list[LiveStream]) -> None:
        if not streams:
            raise ValueError("a live pipeline needs at least one stream")
        self.config = config
        self.cfg = config.live
        self.streams = streams
        self.pipe = Pipeline()
        self.shared = SharedPrivatizer(config, mechanism, self.pipe, len(streams))
        self.mechanism = mechanism
        self.deadline_s = self.cfg.deadline_ms / 1000.0
        self.cover: Mechanism = build_mechanism(config, self.cfg.fallback)
        self._t_origin = time.monotonic()
        self._output_threads: list[threading.Thread] = []
        self._faces_threads: dict[str, threading.Thread] = {}
        self._finish_threads: list[threading.Thread] = []
        self.in_flight = IN_FLIGHT
        self._worker_threads: list[threading.Thread] = []
        self.started_at = time.monotonic()
        self.stopped_by: str | None = None

    @property
    def stop_event(self) -> threading.Event:
        return self.pipe.stop_event

    # ------------------------------------------------------------------------------- threads

    def _spawn_daemon(self, name: str, target: Any) -> threading.Thread:
        """A thread outside ``pipe.threads`` (not joined by ``Pipeline.stop``); failures stop everything."""
        return self.pipe.spawn(name, target, joined=False)

    def _spawn_source(self, stream: LiveStream) -> None:
        # A source blocked in a network read (up to live.read_timeout_s) must not delay the stop.
        self._spawn_daemon(f"source-{stream.name}", lambda: stream.source.run(self.pipe.stop_event))

    def _take_place(self, stream: LiveStream) -> bool:
        """Wait for one of the stream's in-flight places (False once stopping). Without overlap,
        wait until nothing is in flight but the held frames."""
        limit = (max(1, self.in_flight) if stream.overlap else 1) + stream.n_held_max
        with stream.places:
            while stream.n_in_flight >= limit:
                if self.pipe.stop_event.is_set():
                    return False
                stream.places.wait(POLL_S)
            if self.pipe.stop_event.is_set():
                return False
            if stream.n_in_flight:
                stream.metrics.add("frames_pipelined")
            stream.n_in_flight += 1
        return True

    @staticmethod
    def _free_place(stream: LiveStream) -> None:
        with stream.places:
            stream.n_in_flight -= 1
            stream.places.notify_all()

    def _note_latency(self, stream: LiveStream, fraction: float) -> None:
        """Update the running latency mean and switch the overlap with hysteresis."""
        stream.latency_ewma += LATENCY_EWMA * (fraction - stream.latency_ewma)
        if stream.overlap and stream.latency_ewma > SEQUENTIAL_ABOVE:
            stream.overlap = False
            log.debug("stream %s: latency %.2f of the deadline, overlap off", stream.name, stream.latency_ewma)
        elif not stream.overlap and stream.latency_ewma < OVERLAP_BELOW:
            stream.overlap = True
            log.debug("stream %s: latency %.2f of the deadline, overlap on", stream.name, stream.latency_ewma)

    def _faces_loop(self, stream: LiveStream) -> None:
        """Detect + track the newest frame, submit it to the privatizer, go on with the next one."""
        source, metrics = stream.source, stream.metrics
        faces = stream.faces
        assert faces is not None  # made in start()
        try:
            # A place is taken *before* picking a frame: when the privatizer is the slower stage
            # the wait happens here, and the frame then picked is the newest one.
            while self._take_place(stream):
                handed = False
                try:
                    cap = source.slot.get(timeout=POLL_S)
                    if cap is None:
                        if source.slot.closed and source.slot.empty:
                            break
                        continue
                    deadline = cap.t_capture + self.deadline_s
                    if time.monotonic() >= deadline:
                        metrics.add("frames_dropped_late")
                        self._note_latency(stream, 1.0)
                        continue
                    frame = Frame(cap.seq, cap.image, pts=int(round((cap.t_capture - self._t_origin) * 1e6)), time_base=_US)
                    metrics.add_stage("picked", time.monotonic() - cap.t_capture)
                    job = faces.process(frame, stream.stream_id, search_index=stream.picked)
                    stream.picked += 1
                    metrics.add_stage("detected", time.monotonic() - cap.t_capture)
                    handed = True  # from here _hand_on (or the finisher) frees the place
                    if stream.hold is None:
                        self._hand_on(stream, job, cap, deadline)
                    else:  # held until the next picked frames' detection (a late one too: its faces cover back)
                        stream.held.append((cap, deadline))
                        for out in stream.hold.push(job):
                            self._hand_on(stream, out, *stream.held.popleft())
                        faces.counts.faces_lookback = stream.hold.faces_added  # report, metrics
                finally:
                    if not handed:
                        self._free_place(stream)
        finally:
            if stream.hold is not None:
                # The input ended (or a stop): the held frames were never searched in full (their
                # next frames' part is missing), so they are not published.
                for _ in stream.hold.flush():
                    stream.held.popleft()
                    metrics.add("frames_dropped_unsearched")
                    self._free_place(stream)
            stream.pending.put(None)  # end marker: the finisher drains what is left, then stops

    def _hand_on(self, stream: LiveStream, job: Any, cap: Any, deadline: float) -> None:
        """A detected (and, with a spread search, covered-back) frame to the privatizer and the
        finisher; one past its deadline is dropped instead. Frees the frame's place then, else
        the finisher does."""
        if time.monotonic() >= deadline:
            stream.metrics.add("frames_dropped_late")
            self._note_latency(stream, 1.0)
            self._free_place(stream)
            return
        item = PendingFrame(cap.seq, cap.t_capture, deadline)
        if not len(job.faces):
            item.ready = covered.no_faces(cap.image, job.faces, cap.seq, cap.t_capture)
        else:
            # The mechanism works in place: keep private copies (pixels and boxes) for the
            # fallback cover, taken before the job can reach the privatizer.
            item.raw, item.faces = cap.image.copy(), job.faces.copy()
            lj = LiveJob(job, deadline)
            if self.shared.submit(lj):
                item.job = lj
        stream.pending.put(item)  # unbounded queue: never blocks (the places bound it)

    def _finish_loop(self, stream: LiveStream) -> None:
        """Take the stream's frames in capture order; wait for each until its give-up time."""
        metrics, pipe = stream.metrics, self.pipe
        cover_cost = 0.005  # running estimate of the fallback cover's cost, seconds
        try:
            while True:
                try:
                    item: PendingFrame | None = pipe.get(stream.pending, timeout=None)
                except queue.Empty:  # pragma: no cover - no timeout given
                    continue
                if item is None:
                    break
                try:
                    out = item.ready
                    if out is None:
                        lj = item.job
                        # Give up early enough that the cheap cover still finishes by the deadline.
                        give_up = item.deadline - min(0.5 * self.deadline_s, 2.0 * cover_cost + HANDOFF_S)
                        if lj is not None and self._wait_done(lj, give_up) and lj.ok:
                            metrics.add_stage("privatized", lj.t_done - item.t_capture)
                            out = covered.privatized(lj.job, item.t_capture)
                        else:
                            if lj is not None:
                                lj.abandoned = True  # the privatizer skips it if it has not started
                            t_cover = time.monotonic()
                            out = covered.fallback(item.raw, item.faces, self.cover, item.seq, item.t_capture)
                            cover_cost = 0.8 * cover_cost + 0.2 * (time.monotonic() - t_cover)
                            metrics.add("frames_fallback")
                    if out.how != "fallback":
                        metrics.add("frames_privatized")
                    t_covered = time.monotonic() - item.t_capture
                    metrics.add_stage("covered", t_covered)
                    self._note_latency(stream, t_covered / self.deadline_s)
                    if stream.ready.put(out):
                        metrics.add("frames_dropped_stale")
                finally:
                    self._free_place(stream)
        finally:
            # Stopping: frames still queued are simply not published (nothing raw was handed on).
            stream.ready.close()

    def _wait_done(self, lj: LiveJob, give_up: float) -> bool:
        """Wait for ``lj`` until ``give_up`` (in slices, to see a stop); True when it is done."""
        while True:
            left = give_up - time.monotonic()
            if left <= 0:
                return lj.done.is_set()
            if lj.done.wait(min(left, POLL_S)):
                return True
            if self.pipe.stop_event.is_set():
                raise Stopped

    def _output_loop(self, stream: LiveStream) -> None:
        """Publish new frames as they come, repeat the last one when the input stalls."""
        source, metrics, pipe = stream.source, stream.metrics, self.pipe
        for sink in stream.sinks:
            worker = SinkWorker(sink, metrics, pipe)
            stream.workers.append(worker)
            self._worker_threads.append(self._spawn_daemon(f"sink-{stream.name}-{sink.name}", worker.run))
        size: tuple[int, int] | None = None
        last_pub = 0.0
        next_repeat: float | None = None
        try:
            while not pipe.stop_event.is_set():
                fps = stream.fps or source.fps or DEFAULT_FPS
                stream.output_fps = fps
                period = 1.0 / fps
                now = time.monotonic()
                wait = POLL_S if next_repeat is None else min(POLL_S, max(0.0, next_repeat - now))
                item = stream.ready.get(timeout=wait)
                now = time.monotonic()
                if item is not None:
                    gap = min(last_pub + MIN_GAP * period, item.t_capture + self.deadline_s - 0.001) - now
                    if gap > 0:
                        time.sleep(gap)
                        newer = stream.ready.get(timeout=0)
                        if newer is not None:
                            metrics.add("frames_dropped_stale")
                            item = newer
                        now = time.monotonic()
                    if now - item.t_capture > self.deadline_s:
                        # Covered, but later than promised (a starved machine): drop it, the last
                        # frame repeats. Never late beyond the deadline.
                        metrics.add("frames_dropped_late")
                        continue
                    if size is None:
                        size = item.size
                        for worker in stream.workers:  # outputs open at the first frame, at this rate
                            worker.sink.start(fps)
                    item = covered.resized(item, size)
                    metrics.add_stage("handed_to_outputs", now - item.t_capture)
                    self._publish(stream, item, now, new=True)
                    last_pub, next_repeat = now, now + REPEAT_AFTER * period
                elif stream.ready.closed and stream.ready.empty:
                    break  # the input ended and every frame went out
                elif stream.last is not None and next_repeat is not None and now >= next_repeat:
                    self._publish(stream, stream.last, now, new=False)
                    last_pub, next_repeat = now, next_repeat + period
                    if next_repeat <= now:  # fell behind (a slow machine): keep the cadence from now
                        next_repeat = now + period
        except Stopped:
            pass
        finally:
            for worker in stream.workers:
                worker.finish()

    def _publish(self, stream: LiveStream, frame: CoveredFrame, now: float, new: bool) -> None:
        for worker in stream.workers:
            worker.offer(frame, now, new)
        stream.last = frame
        stream.metrics.add("frames_published" if new else "frames_repeated")

    # ----------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        for stream in self.streams:  # load the detectors first: the first frames then meet a ready stage
            if stream.faces is None:
                # The tracker is given each frame's capture time, so its fps is only a default.
                stream.faces = build_live_face_stage(self.config, stream.fps or DEFAULT_FPS)
            if stream.hold is None:
                # Live cannot look back in time, but it can wait: with the search spread over N
                # picked frames, each frame is held until N-1 more are detected, and a face one of
                # them finds first is covered in it too (never raw in a frame it was not searched in).
                stream.hold = build_live_hold(self.config, stream.faces, stream.fps or DEFAULT_FPS)
                if stream.hold is not None:
                    log.info("stream %s: detect.tile_every %d: each frame waits for the next %d frame(s)' detection",
                             stream.name, stream.faces.search_spread, stream.hold.frames)
        self.started_at = time.monotonic()
        for stream in self.streams:
            stream.metrics.started = self.started_at
            self._spawn_source(stream)
        self.pipe.spawn("privatize", self.shared.run)
        for stream in self.streams:
            self._finish_threads.append(self.pipe.spawn(f"finish-{stream.name}", lambda s=stream: self._finish_loop(s)))
            self._faces_threads[stream.name] = self.pipe.spawn(f"faces-{stream.name}", lambda s=stream: self._faces_loop(s))
            t = self.pipe.spawn(f"output-{stream.name}", lambda s=stream: self._output_loop(s))
            self._output_threads.append(t)

    def finished(self) -> bool:
        """True once every stream's output has ended (all inputs ended) or a stage failed."""
        return bool(self.pipe.errors) or all(not t.is_alive() for t in self._output_threads)

    def stop(self, reason: str = "stopped", timeout: float = 3.0) -> None:
        """Stop every thread; outputs are closed (recordings finished) before this returns."""
        if self.stopped_by is None:
            self.stopped_by = reason
        self.pipe.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self.pipe.threads + self._worker_threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._close_detectors()

    def _close_detectors(self) -> None:
        for stream in self.streams:
            thread = self._faces_threads.get(stream.name)
            if stream.faces is not None and not stream.faces_closed and not (thread and thread.is_alive()):
                stream.faces.close()
                stream.faces_closed = True

    def wait_outputs(self, timeout: float = 5.0) -> None:
        """After every input ended: let the sink workers finish (flush, close) on their own."""
        deadline = time.monotonic() + timeout
        threads = self._output_threads + self._worker_threads + list(self._faces_threads.values()) + self._finish_threads
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def raise_if_failed(self) -> None:
        self.pipe.raise_if_failed()

    def report(self) -> dict[str, Any]:
        streams = []
        for stream in self.streams:
            snap = stream.metrics.snapshot()
            snap["output_fps_target"] = round(stream.output_fps, 3) if stream.output_fps else None
            faces = stream.faces
            if faces is not None:
                from dataclasses import asdict

                snap["faces"] = asdict(faces.counts)
                snap["tracks"] = faces.tracker.total_tracks
                # busy time per frame of the stream's own stages (the privatizer's is shared, below)
                busy = {"detect": getattr(faces, "detect_stats", None), "track": getattr(faces, "track_stats", None)}
                snap["stage_busy"] = {name: stats.as_dict() for name, stats in busy.items() if stats is not None}
            snap["sinks"] = {w.sink.name: getattr(w.sink, "frames_written", None) for w in stream.workers}
            streams.append(snap)
        return {
            "streams": streams,
            "privatizer": self.shared.stats(),
            "deadline_ms": self.cfg.deadline_ms,
            "fallback": self.cfg.fallback,
            "mechanism": self.mechanism.describe(),
            "privacy": self.mechanism.privacy_report(),
            "stopped_by": self.stopped_by,
            "wall_s": round(time.monotonic() - self.started_at, 3),
        }
