"""The face stage: detect and track one stream's faces (files, live and eval share it)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import DetectConfig, TrackConfig
from .stages import StageStats
from .types import Detections, Frame, FrameJob


@dataclass
class FaceCounts:
    """What the face stage saw, for the report."""

    frames_with_faces: int = 0
    faces_detected: int = 0  # detector hits (after NMS)
    faces_covered: int = 0  # boxes covered, including tracks carried through detector misses
    faces_predicted: int = 0  # covered boxes with no detection in that frame (temporal dilation)
    faces_lookback: int = 0  # boxes added before a face's first detection (backward dilation)
    frames_fail_closed: int = 0  # frames covered by the fallback after a privatizer error

    def add(self, detected: Detections, covered: Detections) -> None:
        self.faces_detected += len(detected)
        self.faces_covered += len(covered)
        self.faces_predicted += int(covered.predicted.sum())
        self.frames_with_faces += bool(len(covered))


class FaceStage:
    """Detect and track faces in one stream's frames (one detector + tracker per stream)."""

    def __init__(self, detect: DetectConfig, track: TrackConfig, fps: float, lookback_frames: float = 0.0) -> None:
        """``lookback_frames``: how many frames the pipeline looks back (files), which settles the
        detector's "auto" tile schedule; 0 for live (nothing can look back)."""
        from .detect import FaceDetector
        from .track import FaceTracker

        self.detector = FaceDetector(detect.for_pipeline(lookback_frames))
        self.tracker = FaceTracker(track, fps)
        self.fps = fps
        self.counts = FaceCounts()
        self.detect_stats = StageStats("detect")
        self.track_stats = StageStats("track")
        #: the detector's own faces in the last processed frame (before tracking), for diagnostics
        self.last_detected = Detections.empty()

    def process(self, frame: Frame, stream_id: int = 0, search_index: int | None = None) -> FrameJob:
        """``search_index``: the frame's place in the detector's spread search (default: its
        index; live passes its count of picked frames, since the frames it skips are not searched)."""
        t = frame.time_s if frame.time_s is not None else frame.index / self.fps
        self.detect_stats.start()
        hints = self.tracker.predicted_boxes(t)  # tracked faces are confirmed where expected
        index = frame.index if search_index is None else search_index
        detected = self.detector.detect_batch([frame.image], [index], [hints])[0]
        self.detect_stats.stop()
        self.track_stats.start()
        covered = self.tracker.update(detected, t, (frame.width, frame.height))
        self.track_stats.stop()
        self.counts.add(detected, covered)
        self.last_detected = detected
        return FrameJob(frame, covered, stream_id)

    @property
    def search_spread(self) -> int:
        """Over how many frames the detector spreads its search (``detect.tile_every`` settled)."""
        return self.detector.tile_every

    def new_scene(self, fps: float | None = None) -> None:
        """Forget every track (a new, unrelated scene: the next photo of an evaluation), keeping
        the loaded detector; ``fps`` for the new scene's timing (default: unchanged)."""
        from .track import FaceTracker

        if fps is not None:
            self.fps = fps
        self.tracker = FaceTracker(self.tracker.cfg, self.fps)

    def close(self) -> None:
        self.detector.close()
