"""dp-image with a photorealistic generator: one release per person, rendered once, warped per frame.

Model folder ``dpimage-gan-v1`` (``streamdp/models/dpimage-gan``): ``encoder.onnx`` (aligned
96 px crop -> the top-D whitened coordinates of MobileStyleGAN's w; privacy metadata as for
``dpimage-v1``) and ``latent.npz`` (``streamdp.generator.latent``). The generator itself comes from
the installed ``random-face`` package (``streamdp.generator.backend``).

Per track (a person while in view):

1. **Release, once.** The first frame's crop is encoded, clipped to ``[-B, B]^D`` and noised by
   the latent mechanism (``streamdp.privacy``): the one epsilon-DP release of the track. Other
   faces' boxes are blanked in the crop first, so a face's pixels reach only its own release.
2. **Render, once per pose.** The released coordinates plus fresh public randomness become a w
   (``LatentSpace.compose``), synthesized at the yaw step nearest the face's pose (others when
   the head turns), aligned into the canonical crop. Post-processing: no epsilon.
3. **Every frame**: the rendered crop is colour-matched to the public ring around the face and
   pasted with the frame's own alignment through the feathered face mask. A track the detector
   is only predicting (coasting) is also pixelated on its whole box underneath: whatever the
   prediction's lag, the box is covered.

A track that ends and a new one that starts at the same place within ``relink_seconds`` are taken
to be the same person: the new track keeps the release (same face, same ledger entry, no new
epsilon). Live (``render: async``) a face whose render is not ready is pixelated meanwhile,
never shown raw, and switches to its generated face when the render lands.
"""

from __future__ import annotations

import logging
import math
import secrets
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..detect.geometry import box_iou
from ..errors import ModelError
from ..stages import name_native_thread
from ..types import FrameJob
from .base import Mechanism, blank_overlapping_boxes, keypoints_outside
from .steady import PlacementFilter, SteadyCrop
from .spec import MechanismContext
from .dp_image import MIN_FACE_PIXELS  # eye-to-mouth px below which a face is pixelated

log = logging.getLogger(__name__)

GAN_FORMAT = "dpimage-gan-v1"
#: Rendered yaw steps (targets of ``LatentSpace.with_yaw``) and how much of a target the rendered
#: head shows, measured by our detector's yaw proxy (the linear fit under-turns: about 0.6).
YAW_TARGETS = np.array([0.0, -0.3, 0.3, -0.6, 0.6])
YAW_GAIN = 0.6
#: Per-frame smoothing of the colour transform: follows a change of light within ~10 frames; 0.25
#: passed the ring's frame-to-frame noise on (a grey level or so over the whole face, every frame).
COLOUR_EMA = 0.1
RENDER_NICE = 10  # live renders: nice of the background render thread (the stream's threads go first)
RELINK_IOU = 0.3
#: A predicted (coasting) box shows its track's generated face over the pixelation only this soon
#: after the detector last saw the face; later, pixelation alone.
PASTE_COAST_S = 0.25
SCENE_CHANGE = 30.0  # mean abs RGB change of the ring's mean beyond which a coasting box is a new scene
#: Mean squared per-sector colour difference (grey levels^2) between a render's rim and the
#: frame's ring below which the first candidate tried is kept without rendering another.
GOOD_RIM_MISMATCH = 120.0
#: Candidate ws per release: posterior samples of the one release x fresh random details; the one
#: whose predicted ring matches the frame's public ring is rendered (latent.py; no epsilon).
POSTERIOR_CANDIDATES = 4
DETAIL_CANDIDATES = 8


def _lower_priority() -> None:
    """The calling thread yields the CPU to the stream's own threads (Linux: a thread's nice)."""
    name_native_thread("dp-render")
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RENDER_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: renders at normal priority
        pass


@dataclass
class _Release:
    key: tuple[int, int]  # ledger key: (stream, first track id)
    w: np.ndarray  # (512,) the w every render of this release starts from
    renders: dict[int, Any] = field(default_factory=dict)  # yaw step -> RenderedFace
    pending: dict[int, Future] = field(default_factory=dict)
    colour: np.ndarray | None = None  # smoothed 3x4 colour transform
    last_t: float = -math.inf
    last_detected_t: float = -math.inf  # last frame where the detector (not the tracker) had it
    ring_mean: np.ndarray | None = None  # the ring's mean colour there
    last_box: np.ndarray | None = None
    tracks: list[int] = field(default_factory=list)
    candidates: np.ndarray | None = None  # (k, 512) the best-predicted ws, tried in this order at the first render
    ring: np.ndarray | None = None  # the frame's ring sector means when the release was made
    ring_transform: np.ndarray | None = None  # and its colour transform
    placement: PlacementFilter = field(default_factory=PlacementFilter)  # the steadied paste transform
    shown: SteadyCrop = field(default_factory=SteadyCrop)  # the colour-matched crop, kept while colours hold


class GanDpImage(Mechanism):
    """DP-Image on MobileStyleGAN (see the module doc)."""

    name = "dp-image"

    def __init__(self, mechanism_config: Any, context: MechanismContext, model_dir: Path) -> None:
        from ..generator.backend import GENERATOR_NAME, select_backend
        from ..generator.latent import LatentSpace
        from ..generator.render import FaceRenderer, generated_face_mask
        from ..privacy.accounting import TrackNoiseBank
        from ..privacy.mechanisms import build_latent_mechanism, validate_metadata
        from .dp_image_models import check_io, open_session, check_model_dir, select_providers
        from .pixel import Pixelate

        cfg = mechanism_config.dp_image
        self.cfg = cfg
        self.model_dir = model_dir
        self.box_margin = context.box_margin  # cover boxes arrive grown by this; the align fallback undoes it
        check_model_dir(model_dir, cfg.allow_custom_model, ("encoder.onnx", "latent.npz"))
        enc_path = model_dir / "encoder.onnx"
        self.encoder = open_session(enc_path, select_providers())
        self.metadata = dict(self.encoder.get_modelmeta().custom_metadata_map)
        validate_metadata(self.metadata, enc_path)
        check_io(self.encoder, enc_path, {"face": 4}, {"latent": 2})
        self.crop_size = int(self.metadata["streamdp.crop_size"])
        self.latent_dim = int(self.metadata["streamdp.latent_dim"])
        self.space = LatentSpace.load(model_dir / "latent.npz", self.latent_dim, truncation=cfg.truncation)
        self.render_async = cfg.render == "async"
        # Live renders in the background while the stream goes on (a new face pixelated
        # meanwhile): on one CPU thread at a lower priority, so that a render (0.17 s on that thread,
        # up to render_candidates x yaw_steps of them per release) never starves the detector and
        # the encoder of the frames being published; files render on every core.
        self.generator = select_backend(cfg.generator_backend, threads=1 if self.render_async else None)
        self.generator_name = GENERATOR_NAME
        self.renderer = FaceRenderer(self.generator, self.space, cfg.render_size)
        self.render_size = cfg.render_size
        self.mask = generated_face_mask(self.render_size)
        self.latent_mechanism = build_latent_mechanism(
            cfg.mechanism, epsilon=cfg.epsilon, delta=cfg.delta, metadata=self.metadata, seed=cfg.seed
        )
        interval = math.inf if cfg.release_interval is None else cfg.release_interval
        self.noise_bank = TrackNoiseBank(self.latent_mechanism, interval)
        self.ledger = self.noise_bank.ledger
        # Public randomness for the detail of each new face: independent of every input.
        self.rng = np.random.default_rng(secrets.randbits(128) if cfg.seed is None else cfg.seed + 1)
        self.pixelate = Pixelate(mechanism_config.pixelate, mechanism_config.feather)
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix="dp-render", initializer=_lower_priority)
                      if self.render_async else None)
        self._render_lock = threading.Lock()  # the generator and its detector are used by one thread at a time
        # track key -> its release (a relinked track shares its predecessor's), least recent first
        self._by_track: OrderedDict[tuple[int, int], _Release] = OrderedDict()
        self._untracked = 0
        self.counts = {
            "faces_pasted": 0,
            "faces_pixelated_too_small": 0,
            "cut_faces_pixelated": 0,
            "faces_pixelated_waiting_for_render": 0,
            "coasting_boxes_pixelated_under": 0,
            "predicted_boxes_pixelated_only": 0,
            "releases": 0,
            "tracks_relinked": 0,
            "placements_pulled_back": 0,
        }
        log.info("dp-image generator %s on %s (%s)", GENERATOR_NAME, self.generator.backend, self.generator.device)

    # -- the batch ------------------------------------------------------------------------------
    def apply(self, jobs: list[FrameJob]) -> None:
        for job in jobs:
            if len(job.faces):
                self._apply_frame(job)

    def _apply_frame(self, job: FrameJob) -> None:
        from ..align import estimate_transforms
        from ..generator.latent import yaw_proxy
        from ..generator.render import colour_transform, ring_stats
        from ..composite import paste_crops

        faces, image = job.faces, job.frame.image
        t = job.frame.time_s if job.frame.time_s is not None else float(job.frame.index)
        eye_mouth = np.linalg.norm(faces.keypoints[:, :2].mean(axis=1) - faces.keypoints[:, 3], axis=1)
        small = ~(eye_mouth >= MIN_FACE_PIXELS)
        if small.any():
            self.counts["faces_pixelated_too_small"] += int(small.sum())
            self.pixelate.apply([FrameJob(job.frame, faces[small], job.stream_id)])
            for tid in faces.track_ids[small]:
                if tid >= 0:  # shown per track in the report: covered, but without epsilon
                    rel = self._by_track.get((job.stream_id, int(tid)))
                    self.ledger.record_pixelated(rel.key if rel is not None else (job.stream_id, int(tid)))
        big_idx = np.flatnonzero(~small)
        if not len(big_idx):
            return
        big = faces[big_idx]
        # Fail closed under the face: a predicted box (the tracker coasting after the detector
        # lost the face, or the files' look-back before its first detection) is pixelated whole.
        # The generated face goes on top only for a short dropout of a track that has its release
        # (a face coasting longer, or one not yet detected, may not be there at all: a scene cut,
        # a title card), and a release is only ever opened on a detected face.
        # A face cut by the frame's border (a keypoint outside it) is covered the same way: its
        # box pixelated whole, the generated face on top only if its track already has a release
        # (no release opens on a part of a face; its keypoints may be mirrored guesses).
        pred = big.predicted
        cut = keypoints_outside(big.keypoints, image.shape[1], image.shape[0]) & ~pred
        under = pred | cut  # pixelated whole, the face on top only where ``paste`` says
        paste = ~under
        for i in np.flatnonzero(under):
            rel = self._by_track.get((job.stream_id, int(big.track_ids[i])))
            if cut[i]:
                paste[i] = rel is not None
            else:
                paste[i] = rel is not None and t - rel.last_detected_t <= PASTE_COAST_S and self._same_scene(image, big, i, rel)
        if cut.any():
            self.counts["cut_faces_pixelated"] += int(cut.sum())
        if pred.any():
            self.counts["coasting_boxes_pixelated_under"] += int((pred & paste).sum())
            self.counts["predicted_boxes_pixelated_only"] += int((pred & ~paste).sum())
        if under.any():
            self.pixelate.apply([FrameJob(job.frame, big[under], job.stream_id)])
        if not paste.any():
            return
        big_idx, big, pixelated = big_idx[paste], big[paste], under[paste]
        all_boxes = faces.boxes
        S_enc, S = self.crop_size, self.render_size
        m_enc = estimate_transforms(big.keypoints, S_enc, big.boxes, box_margin=self.box_margin)
        m_out = estimate_transforms(big.keypoints, S, big.boxes, box_margin=self.box_margin)
        # Ring statistics from the frame before any paste, other faces' boxes left out (a
        # pixelated coasting box is among them).
        rings = []
        for i in range(len(big)):
            others = np.delete(all_boxes, big_idx[i], axis=0)
            rings.append(ring_stats(image, m_out[i], S, others))
        releases = self._releases_for(job, big, big_idx, m_enc, t, rings)
        yaws = yaw_proxy(big.keypoints)
        order = np.argsort(-big.areas)  # larger (nearer, usually) first: smaller faces end on top
        for i in order:
            rel = releases[i]
            face = self._render_for(rel, float(yaws[i]))
            if face is None:  # live: the render is on its way; never raw meanwhile
                self.counts["faces_pixelated_waiting_for_render"] += 1
                if not pixelated[i]:
                    self.pixelate.apply([FrameJob(job.frame, big[i : i + 1], job.stream_id)])
                continue
            target = colour_transform(rings[i].stats, self.space.ring_reference, rim=face.rim, ring_sectors=rings[i].sectors)
            rel.colour = target if rel.colour is None else (1 - COLOUR_EMA) * rel.colour + COLOUR_EMA * target
            crop = rel.shown.crop(face, rel.colour, rings[i].sectors)  # recoloured when colours moved
            pulled = rel.placement.clamped
            m_paste = rel.placement.update(m_out[i], S, t)  # steadied, within MAX_DEVIATION of m_out
            self.counts["placements_pulled_back"] += rel.placement.clamped - pulled
            paste_crops(image, crop[None], m_paste[None], self.mask)
            self.counts["faces_pasted"] += 1

    def _same_scene(self, image: np.ndarray, faces: Any, i: int, rel: _Release) -> bool:
        """Whether the ring around a predicted box still looks like it did at the last detection
        (no cut to black or to another shot, where a pasted face would float on its own)."""
        from ..align import estimate_transforms
        from ..generator.render import ring_stats

        if rel.ring_mean is None:
            return False
        m = estimate_transforms(faces.keypoints[i : i + 1], 64, faces.boxes[i : i + 1], box_margin=self.box_margin)[0]
        ring = ring_stats(image, m, 64)
        return ring.stats is not None and float(np.abs(ring.stats[0] - rel.ring_mean).mean()) <= SCENE_CHANGE

    # -- releases: one per track (and per relinked track), encoded and noised once -------------
    def _releases_for(
        self, job: FrameJob, big: Any, big_idx: np.ndarray, m_enc: np.ndarray, t: float, rings: list[Any]
    ) -> list[_Release]:
        from ..align import warp_crops
        from ..generator.render import colour_transform

        out: list[_Release | None] = []
        need: list[int] = []
        keys: list[tuple[int, int]] = []
        for tid in big.track_ids:
            tid = int(tid)
            if tid < 0:  # a still image: every face is its own release
                self._untracked += 1
                tid = -self._untracked
            keys.append((job.stream_id, tid))
        present = set(keys)
        for i, key in enumerate(keys):
            rel = self._by_track.get(key)
            if rel is None and key[1] >= 0:
                rel = self._relink(key, big.boxes[i], t, present)
            if rel is not None and self.noise_bank.needs_latent(rel.key, t):
                rel = None  # the release interval elapsed: a new release (a new face)
            out.append(rel)
            if rel is None:
                need.append(i)
        if need:
            crops = warp_crops(self._blanked(job), m_enc[need], self.crop_size)
            x = np.ascontiguousarray(crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0)
            (z,) = self.encoder.run(["latent"], {"face": x})
            if z.shape != (len(need), self.latent_dim):
                raise ModelError(f"encoder returned latent of shape {z.shape}, expected (N, {self.latent_dim})")
            zc = self.latent_mechanism.clip(z)
            for j, i in enumerate(need):
                coords = self.noise_bank.release_candidates(keys[i], t, zc[j], POSTERIOR_CANDIDATES)
                w_free = self.renderer.free_w(self.rng, DETAIL_CANDIDATES)
                cand = np.concatenate([self.space.compose(np.repeat(c[None], len(w_free), 0), w_free) for c in coords])
                tf = colour_transform(rings[i].stats, self.space.ring_reference)
                order = self.space.rank_matches(cand, rings[i].sectors, tf)[: self.cfg.render_candidates]
                rel = _Release(
                    keys[i], cand[order[0]], tracks=[keys[i][1]], candidates=cand[order],
                    ring=rings[i].sectors, ring_transform=tf,
                )
                self.counts["releases"] += 1
                out[i] = rel
        for i, rel in enumerate(out):
            assert rel is not None
            if keys[i][1] >= 0:
                self._by_track[keys[i]] = rel
                self._by_track.move_to_end(keys[i])
            rel.last_t, rel.last_box = t, big.boxes[i].copy()
            if not big.predicted[i]:
                rel.last_detected_t = t
                if rings[i].stats is not None:
                    rel.ring_mean = rings[i].stats[0]
        self._prune(t)
        return out  # type: ignore[return-value]

    def _relink(self, key: tuple[int, int], box: np.ndarray, t: float, present: set[tuple[int, int]]) -> _Release | None:
        """A release whose track was last seen recently at the same place, and whose track is not
        in this frame: the same person, re-detected under a new track id."""
        if self.cfg.relink_seconds <= 0:
            return None
        best, best_iou = None, RELINK_IOU
        seen: set[int] = set()
        for rel in reversed(self._by_track.values()):
            if id(rel) in seen:
                continue
            seen.add(id(rel))
            if rel.key[0] != key[0] or rel.last_box is None or (key[0], rel.tracks[-1]) in present:
                continue
            if not (0 < t - rel.last_t <= self.cfg.relink_seconds):
                continue
            iou = float(box_iou(rel.last_box, box)[0, 0])
            if iou >= best_iou:
                best, best_iou = rel, iou
        if best is not None:
            best.tracks.append(key[1])
            self.counts["tracks_relinked"] += 1
        return best

    def _prune(self, t: float) -> None:
        """Forget tracks not seen for a minute (and past the relink window), oldest first: bounded
        memory on endless streams. A forgotten track that comes back is a new release (counted)."""
        horizon = max(self.cfg.relink_seconds, 60.0)
        while len(self._by_track) > 1024:
            key, rel = next(iter(self._by_track.items()))
            if t - rel.last_t <= horizon:
                break
            del self._by_track[key]

    def _blanked(self, job: FrameJob) -> np.ndarray:
        """The frame for the encoder: overlapping faces' boxes blanked (``blank_overlapping_boxes``)."""
        return blank_overlapping_boxes(job.frame.image, job.faces.boxes)

    # -- rendering: once per release per yaw step ------------------------------------------------
    def _step_for(self, rel: _Release, yaw: float) -> int:
        n = max(1, min(self.cfg.yaw_steps, len(YAW_TARGETS)))
        expected = []
        for k in range(n):
            r = rel.renders.get(k)
            expected.append(r.yaw if r is not None else YAW_GAIN * YAW_TARGETS[k])
        return int(np.argmin(np.abs(np.array(expected) - yaw)))

    def _render_step(self, rel: _Release, k: int) -> Any:
        from ..generator.render import rim_mismatch

        yaw = float(YAW_TARGETS[k]) if self.cfg.yaw_steps > 1 else None
        with self._render_lock:
            if rel.candidates is None:
                return self.renderer.render(rel.w, yaw)
            # The first render of a release: the best-predicted candidates are rendered in turn
            # and the one whose actual rim matches the frame's ring best is kept (post-processing
            # of the release and public pixels, like the prediction that ordered them).
            best, best_err = None, math.inf
            for w in rel.candidates:
                face = self.renderer.render(w, yaw)
                err = float(rim_mismatch(face.rim[None], rel.ring, rel.ring_transform)[0])
                if err < best_err:
                    best, best_err, rel.w = face, err, w
                if err <= GOOD_RIM_MISMATCH:
                    break
            rel.candidates = None
            return best

    def _render_for(self, rel: _Release, yaw: float) -> Any | None:
        for k, fut in list(rel.pending.items()):
            if fut.done():
                del rel.pending[k]
                try:
                    rel.renders[k] = fut.result()
                except Exception as exc:  # a failed render leaves the face pixelated, and says so
                    log.warning("dp-image render failed: %s", exc)
        k = self._step_for(rel, yaw)
        if k not in rel.renders:
            if not self.render_async:
                rel.renders[k] = self._render_step(rel, k)
            elif k not in rel.pending:
                assert self._pool is not None
                rel.pending[k] = self._pool.submit(self._render_step, rel, k)
        if k in rel.renders:
            return rel.renders[k]
        if rel.renders:  # another pose of the same face while the right one renders
            return min(rel.renders.values(), key=lambda r: abs(r.yaw - yaw))
        return None

    # -- report ------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "design": "photorealistic generator: one release per track, rendered once per pose, warped per frame",
            "model": str(self.model_dir),
            "model_version": self.metadata["streamdp.version"],
            "model_sha256": self.metadata["streamdp.sha256"],
            "generator": self.generator_name,
            "generator_backend": self.generator.backend,
            "generator_device": self.generator.device,
            "encoder_provider": self.encoder.get_providers()[0],
            "latent_dim": self.latent_dim,
            "latent": "whitened top-D principal coordinates of the generator's w",
            "truncation": self.space.truncation,
            "yaw_steps": self.cfg.yaw_steps,
            "render_size": self.render_size,
            "render": "async" if self.render_async else "sync",
            "latent_mechanism": self.latent_mechanism.describe(),
            "release_interval_s": "whole track" if self.cfg.release_interval is None else self.cfg.release_interval,
            "relink_seconds": self.cfg.relink_seconds,
            "faces_rendered": self.renderer.rendered,
            **self.counts,
        }

    def privacy_report(self) -> dict[str, Any]:
        from ..privacy.accounting import without_privacy_if_seeded

        rep = without_privacy_if_seeded(self.ledger.report(), self.cfg.seed is not None)
        relinked = {}
        for rel in self._by_track.values():
            if len(rel.tracks) > 1:
                relinked[f"{rel.key[0]}:{rel.key[1]}"] = rel.tracks
        rep["relinked_tracks"] = relinked
        return rep

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
