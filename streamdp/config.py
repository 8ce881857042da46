"""Configuration: one validated value, built once at the edge (CLI / YAML), passed to every stage.

Unknown keys are errors (``extra="forbid"``): a typo in a privacy setting must never be silently
ignored.
"""

from __future__ import annotations

import math

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, create_model, field_validator, model_validator

from .config_base import Section
from .errors import ConfigError


# the range of each of DetectConfig's "auto"-or-N fields
_DETECT_AUTO_OR_RANGE = {"tile_every": (1, 30), "threads": (1, 64), "tile_size": (128, 2048)}


class DetectConfig(Section):
    # Candidate threshold: low, since a missed face is a privacy leak. Each candidate that is not
    # already sure is looked at again in a crop at the model's favourite scale and kept when that
    # second look reaches ``verify_score`` (real faces score >= 0.80 there, the worst non-face in
    # our sample media 0.71): recall from the low first threshold, precision from the second look.
    min_confidence: float = Field(0.2, ge=0.05, le=0.99)
    verify_score: float = Field(0.75, ge=0.05, le=0.99)
    # Tiling for small faces: the short-range model sees 128x128, so a 1080p frame is also searched
    # in overlapping square tiles of about ``tile_size`` source pixels. "auto" picks the grid from
    # the frame size; 0 disables tiling; N >= 1 forces N tile rows.
    tiles: Literal["auto"] | int = "auto"
    # "auto": for files 224 with the canvas search (256 with tiles; the search is spread over the
    # look-back, so the finer grid is affordable: faces from 32 px at 720p), live 384 (every
    # frame: faces from 40 px). See effective_tile_size.
    tile_size: Literal["auto"] | int = "auto"
    tile_overlap: float = Field(0.25, ge=0.0, le=0.75)
    # The tiled search is spread over N frames (frame i searches tiles i mod N: each part of the
    # frame once every N frames, at an even cost); the full frame and every tracked face are
    # searched every frame. "auto": for files as many frames as the look-back covers
    # (track.lookback_seconds: a face found k frames late is covered back to its first frame),
    # live 2 (builder.LIVE_SEARCH_SPREAD: each frame waits for the next picked frame's detection,
    # which covers back a face it finds first; live/pipeline.py), 1 for stills and the
    # frame-by-frame API. Live with N > 1 always holds each frame N-1 picked frames.
    tile_every: Literal["auto"] | int = "auto"
    nms_iou: float = Field(0.3, ge=0.05, le=0.95)
    # Faces cut by the frame's border: with the tile pass, also search tiles centred on the edges,
    # their outer half mirrored from the frame (a cut face becomes a whole one). "sides": left and
    # right edges (people walk in and out there), "all": all four, "off".
    edge_search: Literal["sides", "all", "off"] = "sides"
    # The change gate (streamdp/detect/schedule.py ChangeGate): a scheduled tile or canvas band
    # whose pixels outside the tracked faces have not changed (no 8x8 block by more than 6 grey
    # levels) since its own last search is not searched again, for up to 8 frames live (2 turns
    # of a spread search, files), and only with a tracker (the pipelines; a bare FaceDetector
    # call searches in full). Same pixels, same result: a static camera's background costs
    # nothing after its first search; a moving camera searches everything as before.
    skip_unchanged: bool = True
    # How the BlazeFace model runs: "litert" = LiteRT's XNNPACK kernels on the CPU
    # (streamdp/detect/litert.py), "openvino" = OpenVINO's CPU plugin, bf16 where the CPU has it
    # natively (streamdp/detect/openvino_engine.py: half LiteRT's model time there), "onnx" =
    # ONNX Runtime (CUDA when there is one), all with the same batched pre/post-processing as
    # MediaPipe (streamdp/detect/blazeface.py); "mediapipe" = MediaPipe Tasks, one call per image.
    # "auto": onnx where CUDA is, openvino on a native-bf16 CPU, else litert (onnx where LiteRT
    # has no wheel).
    backend: Literal["auto", "litert", "openvino", "onnx", "mediapipe"] = "auto"
    # How the pyramid's levels are searched: "canvas" = each level as one downscaled copy of the
    # frame in one model run (streamdp/detect/canvas.py: half the model work of the tiles, and no
    # tile border cuts a face); "tiles" = overlapping 128x128 views (all MediaPipe Tasks can do;
    # the change gate works on tiles). "auto": canvas for files, tiles live (40 px faces: the
    # canvas left 2 of 576 face-frames with raw pixels where the tiles left none), and tiles with
    # mediapipe.
    search: Literal["auto", "canvas", "tiles"] = "auto"
    # The detector's threads. LiteRT runs that many model inputs of a frame at once, each thread
    # with interpreters of its own: about half the wall time for the same CPU (30 tile views on
    # the 2-core VM: 35 -> 18 ms, 35 CPU ms either way). ONNX Runtime uses them inside each call
    # (~40% less wall time for ~60% more CPU). "auto": live with LiteRT 2 (at most the CPU count:
    # the detection stage is the live pipeline's slowest, and a second core has room beside it),
    # else 1 (files keep both cores busy with x264 and the pipeline's stages already).
    threads: Literal["auto"] | int = "auto"

    @model_validator(mode="after")
    def _search_backend(self) -> DetectConfig:
        if self.search == "canvas" and self.backend == "mediapipe":
            raise ValueError("detect.search 'canvas' needs the litert or onnx backend (MediaPipe Tasks takes 128x128 views only)")
        return self

    def effective_search(self, lookback_frames: float | None = None) -> str:
        """"canvas" or "tiles" (see ``search``). "auto": live (``lookback_frames`` < 2) keeps the
        tiles: on the 1280x720 size ladder (benchmarks/tracking.py --ladder, 2 seeds) live with
        the canvas left 2 of 576 face-frames of 40 px faces with raw pixels, the tiles none;
        files with the canvas (224 px) leave none from 32 px, as the tiles did."""
        if self.search != "auto":
            return self.search
        if self.backend == "mediapipe":
            return "tiles"
        # without a pipeline's look-back (a detector of its own, the Python API) as live does
        return "canvas" if lookback_frames is not None and lookback_frames >= 2 else "tiles"

    @field_validator(*_DETECT_AUTO_OR_RANGE)
    @classmethod
    def _auto_or_in_range(cls, v: str | int, info: ValidationInfo) -> str | int:
        lo, hi = _DETECT_AUTO_OR_RANGE[info.field_name]
        if v != "auto" and not lo <= int(v) <= hi:
            raise ValueError(f"must be 'auto' or {lo}..{hi}")
        return v

    def effective_tile_size(self, lookback_frames: float = 0.0) -> int:
        """The finest tile side: an explicit N, or "auto": with >= 2 frames of look-back (files)
        224 for the canvas search, 256 for tiles; else (live) 384. The canvas sees each face once,
        at one place on the model's anchor grid, where overlapping tiles saw it up to four times:
        for files its finest level is a little finer for the same recall (LFW faces on 720p
        frames, found in one search: 28 px 68/72 canvas-224 vs 66/72 tiles-256, 32 px 72 vs 71).
        Live keeps 384 (40 px faces: 57/72 canvas vs 54/72 tiles): a 320 level found more small
        faces (67/72) but also a mirror-seam ghost beside a fast face at the left edge, a false
        track each time it came back (benchmarks/tracking.py, 720p "fast")."""
        if self.tile_size != "auto":
            return int(self.tile_size)
        canvas = self.effective_search() == "canvas"
        if lookback_frames >= 2:
            return 224 if canvas else 256
        return 384

    def for_pipeline(self, lookback_frames: float) -> DetectConfig:
        """This section with the "auto" schedule settled for a pipeline with that much look-back."""
        settled = self.model_copy(update={"search": self.effective_search(lookback_frames)})
        return settled.model_copy(update={"tile_size": settled.effective_tile_size(lookback_frames),
                                          "tile_every": settled.effective_tile_every(lookback_frames),
                                          "threads": settled.effective_threads(lookback_frames)})

    def effective_threads(self, lookback_frames: float = 2.0) -> int:
        """``threads`` settled (see its comment): an explicit N, or "auto": 2 live (less than 2
        frames of look-back) with the LiteRT backend on a machine with 2+ CPUs, else 1."""
        if self.threads != "auto":
            return int(self.threads)
        if lookback_frames >= 2:
            return 1
        import os

        from .detect.backends import resolve_backend

        return min(2, os.cpu_count() or 1) if resolve_backend(self.backend) in ("litert", "openvino") else 1

    def effective_tile_every(self, lookback_frames: float) -> int:
        """The tile schedule: an explicit N, or "auto": N = the whole frames of look-back (a face
        first searched N-1 frames after it appeared is covered back to then), 1 to 12."""
        if self.tile_every != "auto":
            return int(self.tile_every)
        return int(min(12, max(1, math.floor(lookback_frames + 1e-9))))


class TrackConfig(Section):
    iou_match: float = Field(0.2, ge=0.0, le=1.0)
    # Temporal dilation: keep covering a face this long after the detector last saw it.
    coast_seconds: float = Field(0.5, ge=0.0, le=10.0)
    # Grow every covered box by this fraction of its size on each side (plus more while coasting).
    box_margin: float = Field(0.2, ge=0.0, le=2.0)
    # Files only: also cover a new face in the frames of this window *before* its first detection
    # (backward dilation; see streamdp/lookback.py). Live streams cannot look back.
    lookback_seconds: float = Field(0.25, ge=0.0, le=5.0)
    coast_margin_per_second: float = Field(0.5, ge=0.0, le=10.0)
    # A face that leaves the frame is held at the edge it left by (40% of its box inside) for this
    # long: a face coming back there is covered from its first pixel, as the same track.
    edge_hold_seconds: float = Field(2.0, ge=0.0, le=30.0)
    # A face lost behind another detected face keeps being followed (moving at its speed) this long.
    occlusion_hold_seconds: float = Field(2.0, ge=0.0, le=30.0)
    # A new detection cut by the frame's edge with at least this fraction of it inside the cover
    # box of a face seen whole in the same frame (hair, an ear) is covered as a provisional track:
    # no id, no release, until it is seen otherwise (streamdp/track.py). 0 turns this off.
    edge_satellite_inside: float = Field(0.5, ge=0.0, le=1.0)
    # A track whose coast ran out in view is remembered this long: a new detection near where it
    # was heading, at a similar size, takes its id back (one person, one track). 0 turns this off.
    reassociate_seconds: float = Field(2.0, ge=0.0, le=30.0)


def _mechanism_config_model() -> type[Section]:
    """``mechanism``: the chosen name, the feathering, and one section per declared mechanism
    (``mechanisms/registry.py``: a new mechanism module brings its section with it)."""
    from .mechanisms.pixel import DEFAULT_FEATHER
    from .mechanisms.registry import available_mechanisms, mechanism_specs

    sections: dict[str, Any] = {
        spec.section: (spec.settings, Field(default_factory=spec.settings))
        for spec in mechanism_specs().values() if spec.settings is not None
    }

    def known_name(cls: type, v: str) -> str:
        if v not in available_mechanisms():
            raise ValueError(f"unknown mechanism {v!r} (choose from {', '.join(available_mechanisms())})")
        return v

    return create_model(
        "MechanismConfig",
        __base__=Section,
        __doc__="The anonymizer: ``name`` and each mechanism's own section.",
        __validators__={"_known_name": field_validator("name")(classmethod(known_name))},
        name=(str, "dp-image"),
        feather=(float, Field(DEFAULT_FEATHER, ge=0.0, le=0.5)),  # mask feathering, a fraction of the box
        **sections,
    )


MechanismConfig = _mechanism_config_model()


class BatchConfig(Section):
    max_batch: int = Field(16, ge=1, le=1024)
    max_wait_ms: float = Field(5.0, ge=0.0, le=1000.0)


class OutputConfig(Section):
    codec: str = "libx264"
    crf: int | None = Field(20, ge=0, le=63)
    preset: str | None = "medium"
    pix_fmt: str = "yuv420p"
    bitrate: int | None = None  # bits/s, instead of crf when set
    copy_audio: bool = True
    copy_subtitles: bool = True
    jpeg_quality: int = Field(95, ge=1, le=100)


class PipelineConfig(Section):
    queue_size: int = Field(4, ge=1, le=256)
    threads: Literal["auto"] | int = "auto"  # worker threads for decode/encode codecs
    # Files: no frame reaching the encoder for this long means a stage is stuck (a hung decoder,
    # detector or model call): the run stops with one line and writes nothing, instead of
    # hanging forever. Far above any real frame's time (a generator render is ~0.5 s).
    stall_timeout_s: float = Field(120.0, ge=1.0, le=3600.0)


class LiveStreamConfig(Section):
    """One input of a multi-stream live relay (``live.streams`` in the YAML)."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # label in logs and metrics
    input: str = Field(min_length=1)  # rtsp://, rtmp://, http(s)://, srt://, a file, a camera spec
    output: str | None = None  # rtsp://server/path to publish to
    record: Path | None = None  # also record the anonymized stream to this file


class LiveConfig(Section):
    """Live camera / relay settings (``streamdp live``, ``streamdp relay``)."""

    # Capture -> publish bound. A frame whose privatization is not done by then goes out with its
    # faces covered by ``fallback``; a frame whose detection is not done by then is dropped (the
    # last anonymized frame is repeated): never raw, never later than this.
    deadline_ms: float = Field(250.0, ge=10.0, le=10_000.0)
    fallback: str = "solid"  # a cover mechanism (mechanisms/registry.py cover_mechanisms())
    fps: float | None = Field(None, gt=0.0, le=240.0)  # output rate; None: the input's
    transport: Literal["tcp", "udp"] = "tcp"  # RTSP input transport
    open_timeout_s: float = Field(5.0, gt=0.0, le=120.0)
    read_timeout_s: float = Field(5.0, gt=0.0, le=120.0)  # no data for this long: reconnect
    reconnect_initial_s: float = Field(0.5, gt=0.0, le=60.0)
    reconnect_max_s: float = Field(8.0, gt=0.0, le=600.0)
    # Low-latency H.264 for publishing (no B-frames, tune=zerolatency).
    preset: str = "ultrafast"
    crf: int = Field(23, ge=0, le=51)
    max_bitrate: int | None = Field(None, ge=100_000)  # bits/s cap (VBV) for constrained links
    gop_seconds: float = Field(1.0, gt=0.0, le=10.0)
    record_preset: str = "veryfast"  # -o recording.mp4
    camera_size: tuple[int, int] | None = None  # (width, height) asked of the camera
    camera_fps: float | None = Field(None, gt=0.0, le=240.0)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    streams: list[LiveStreamConfig] = Field(default_factory=list)

    @field_validator("fallback")
    @classmethod
    def _cover_fallback(cls, v: str) -> str:
        from .mechanisms.registry import cover_mechanisms

        if v not in cover_mechanisms():
            raise ValueError(f"must be a cover mechanism ({', '.join(cover_mechanisms())})")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> LiveConfig:
        names = [s.name for s in self.streams if s.name]
        if len(names) != len(set(names)):
            raise ValueError("live.streams: stream names must be unique")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("live.reconnect_max_s must be >= live.reconnect_initial_s")
        return self


class Config(Section):
    detect: DetectConfig = DetectConfig()
    track: TrackConfig = TrackConfig()
    mechanism: MechanismConfig = MechanismConfig()
    batch: BatchConfig = BatchConfig()
    output: OutputConfig = OutputConfig()
    pipeline: PipelineConfig = PipelineConfig()
    live: LiveConfig = LiveConfig()


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    text = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = f"unknown key {where!r}"
    else:
        msg = f"{where}: {text}" if where else text
    more = len(err.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"invalid config {source}: {msg}{suffix}"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Build the validated ``Config`` from an optional YAML file plus dotted-key overrides."""
    data: dict[str, Any] = {}
    source = "(command line)"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"invalid config {p}: not valid YAML{at}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"invalid config {p}: the top level must be a mapping")
        data = loaded
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"invalid config {source}: {key!r} must be a mapping")
        node[leaf] = value
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
