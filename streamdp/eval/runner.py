"""Run the evaluation: the real pipeline on each probe photo, every setting, every adversary.

Phases (each spread over ``workers`` processes, with a tqdm bar):

1. **Gallery** (originals, cached by file hash): the pipeline's detection (MediaPipe, as
   ``streamdp run`` sees the photo), and per adversary the *reference*: its own detection and
   landmarks on the original (or, when its detector misses the original, a geometry from the
   pipeline's box) and the descriptor there.
2. **Probes**: each probe photo is padded (replicated border, ``pad`` x its size on each side,
   so that the face is not at the frame's edge), run through ``FaceStage`` (detection + tracker,
   with its box margin) and, for each setting, through ``Privatizer`` + the setting's mechanism,
   exactly as ``streamdp run`` does; the output is cropped back to the photo and measured:
   informed and naive descriptors per adversary, MediaPipe and dlib-HOG detection, SSIM, keypoint
   displacement. Each probe is its own stream (``stream_id``): a still photo is its own release.
3. **Video attack** (optional): a short clip per probe (the photo sliding 1 px per frame, 25 fps),
   through ``FaceStage`` (a real track) and dp-image twice: noise drawn once per track and reused
   (the runtime's ``TrackNoiseBank``), and fresh noise every frame (release interval shorter than
   a frame). The adversary averages its descriptors over the clip.

Then ``aggregate`` turns the records into one row per setting (``report.py`` writes them).
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .cache import FeatureCache, array_key
from .dataset import EvalSet
from .settings import Setting, build_setting_mechanism, setting_config

log = logging.getLogger(__name__)

DETECT_NS = "pipeline-detect-v1"
HOG_NS = "dlib-hog-v1"
MAX_DETS = 4
SAMPLE_PROBES = 4  # probes whose outputs are kept for the sample grid
EQUAL_FAR = 0.01  # false-accept rate on originals at which the recognisers are also compared


@dataclass
class EvalOptions:
    config_path: Path | None = None
    base_overrides: dict[str, Any] = field(default_factory=dict)
    adversaries: tuple[str, ...] = ("dlib", "facenet")
    workers: int = 1
    pad: float = 0.25
    cache_dir: Path | None = None
    video_tracks: int = 0
    video_frames: int = 12
    seed: int | None = None  # mechanisms' noise: tests only
    progress: bool = True  # tqdm bars (a terminal)
    progress_lines: bool = False  # plain periodic lines instead (a log file: no terminal)


# ------------------------------------------------------------------------------------------------
# Worker side
# ------------------------------------------------------------------------------------------------
_W: dict[str, Any] = {}


def _load_rgb(path: Path) -> np.ndarray:
    from ..source import read_image

    return read_image(path).image


def _pad(image: np.ndarray, pad: int) -> np.ndarray:
    import cv2

    if pad <= 0:
        return np.ascontiguousarray(image)
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def _pad_px(image: np.ndarray, frac: float) -> int:
    return int(round(frac * max(image.shape[:2])))


def _init_worker(opts: EvalOptions, settings: list[Setting], snapshot: dict[str, dict[str, np.ndarray]]) -> None:
    from ..config import load_config
    from ..builder import build_face_stage, build_privatizer
    from .adversaries import adversary_class, limit_threads

    if opts.workers > 1:
        limit_threads()
    logging.getLogger("streamdp").setLevel(logging.ERROR)
    base = load_config(opts.config_path, opts.base_overrides)
    _W.clear()
    _W["opts"] = opts
    _W["config"] = base
    _W["stage"] = build_face_stage(base, fps=1.0)
    _W["settings"] = settings
    _W["configs"] = [setting_config(s, opts.config_path, opts.base_overrides) for s in settings]
    _W["privatizers"] = [
        build_privatizer(c, build_setting_mechanism(s, c, opts.seed)) for s, c in zip(settings, _W["configs"])
    ]
    _W["advs"] = [adversary_class(a)(opts.cache_dir) for a in opts.adversaries]
    _W["cache"] = snapshot
    _W["new"] = []
    try:
        import dlib

        _W["hog"] = dlib.get_frontal_face_detector()
    except ImportError:
        _W["hog"] = None
    _W["video_mechs"] = {}


def _cache_get(ns: str, key: str) -> np.ndarray | None:
    return _W["cache"].get(ns, {}).get(key)


def _cache_put(ns: str, key: str, value: np.ndarray) -> None:
    value = np.asarray(value, np.float32).reshape(-1)
    _W["cache"].setdefault(ns, {})[key] = value
    _W["new"].append((ns, key, value))


def _take_new() -> list[tuple[str, str, np.ndarray]]:
    new, _W["new"] = _W["new"], []
    return new


def _detect(canvas: np.ndarray, pad: int, use_cache: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pipeline detector on a padded canvas -> boxes, keypoints (photo coordinates), scores."""
    key = array_key(canvas, "detect") if use_cache else None
    hit = _cache_get(DETECT_NS, key) if key else None
    if hit is None:
        det = _W["stage"].detector.detect(canvas, 0)
        n = min(len(det), MAX_DETS)
        row = np.full(1 + MAX_DETS * 17, np.nan, np.float32)
        row[0] = n
        for i in range(n):
            row[1 + 17 * i : 1 + 17 * (i + 1)] = np.concatenate([det.boxes[i], det.keypoints[i].ravel(), det.scores[i : i + 1]])
        if key:
            _cache_put(DETECT_NS, key, row)
        hit = row
    n = int(hit[0])
    d = hit[1 : 1 + 17 * n].reshape(n, 17)
    return d[:, :4] - pad, d[:, 4:16].reshape(n, 6, 2) - pad, d[:, 16]


def _hog(image: np.ndarray, use_cache: bool) -> tuple[np.ndarray, np.ndarray]:
    hog = _W["hog"]
    if hog is None:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    key = array_key(image, "hog1") if use_cache else None
    hit = _cache_get(HOG_NS, key) if key else None
    if hit is None:
        rects, scores, _ = hog.run(np.ascontiguousarray(image), 1, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32).reshape(-1, 4)
        sc = np.asarray(scores, np.float32)
        order = np.argsort(-sc)[:MAX_DETS]
        hit = np.concatenate([[len(order)], np.concatenate([boxes[order], sc[order, None]], 1).ravel()]).astype(np.float32)
        if key:
            _cache_put(HOG_NS, key, hit)
    n = int(hit[0])
    d = hit[1 : 1 + 5 * n].reshape(n, 5)
    return d[:, :4], d[:, 4]


def _default_box(shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    return np.array([0.2 * w, 0.15 * h, 0.8 * w, 0.9 * h], np.float32)


def _embed(adv: Any, image: np.ndarray, geometry: np.ndarray, use_cache: bool) -> np.ndarray:
    key = array_key(image, geometry) if use_cache else None
    hit = _cache_get(adv.namespace, key) if key else None
    if hit is None:
        hit = adv.embed(image, geometry)
        if key:
            _cache_put(adv.namespace, key, hit)
    return hit


def _locate(adv: Any, image: np.ndarray, use_cache: bool, hog: Any = None) -> np.ndarray | None:
    """The adversary's own detection, cached (an empty vector = not found)."""
    ns = adv.namespace + "-locate-central"
    key = array_key(image) if use_cache else None
    hit = _cache_get(ns, key) if key else None
    if hit is None:
        if hog is not None and adv.name == "dlib":
            g = adv.locate(image, hog=hog)
        else:
            g = adv.locate(image)
        hit = np.zeros(0, np.float32) if g is None else np.asarray(g, np.float32)
        if key:
            _cache_put(ns, key, hit)
    return hit if hit.size else None


def gallery_task(item: tuple[int, str]) -> dict[str, Any]:
    """Reference data of one original photo (keyed by its file hash)."""
    idx, path = item
    opts: EvalOptions = _W["opts"]
    t0 = time.perf_counter()
    c0 = time.process_time()
    img = _load_rgb(Path(path))
    pad = _pad_px(img, opts.pad)
    boxes, kps, scores = _detect(_pad(img, pad), pad, use_cache=True)
    hog_boxes, _ = _hog(img, use_cache=True)
    out: dict[str, Any] = {"index": idx, "found_pipeline": bool(len(boxes)), "found_hog": bool(len(hog_boxes))}
    if len(boxes):
        from .adversaries import central

        k = central(boxes, img.shape)  # the photo's subject, not a face in the background
        out["box"], out["kps"] = boxes[k], kps[k]
    else:
        out["box"], out["kps"] = _default_box(img.shape), np.full((6, 2), np.nan, np.float32)
    for adv in _W["advs"]:
        g = _locate(adv, img, use_cache=True, hog=(hog_boxes, np.zeros(len(hog_boxes))) if adv.name == "dlib" else None)
        found = g is not None
        if g is None:
            g = adv.from_box(img, out["box"])
        out[f"{adv.name}.found"] = found
        out[f"{adv.name}.geom"] = np.asarray(g, np.float32)
        out[f"{adv.name}.desc"] = _embed(adv, img, g, use_cache=True)
    out["new"] = _take_new()
    out["seconds"] = time.perf_counter() - t0
    out["cpu_s"] = time.process_time() - c0
    return out


def probe_task(item: tuple[int, str, int, dict[str, Any]]) -> dict[str, Any]:
    """Every setting on one probe photo."""
    from ..track import FaceTracker
    from ..types import Frame, FrameJob

    idx, path, stream_id, ref = item
    opts: EvalOptions = _W["opts"]
    stage = _W["stage"]
    t0 = time.perf_counter()
    img = _load_rgb(Path(path))
    pad = _pad_px(img, opts.pad)
    canvas = _pad(img, pad)
    stage.tracker = FaceTracker(_W["config"].track, 1.0)  # a still photo: a fresh track
    job = stage.process(Frame(0, canvas.copy()))
    face_box = np.asarray(ref["box"], np.float32)
    ref_kps = np.asarray(ref["kps"], np.float32)
    rec: dict[str, Any] = {"index": idx, "pipeline_faces": len(job.faces), "settings": []}
    for si, (setting, priv) in enumerate(zip(_W["settings"], _W["privatizers"])):
        ts = time.perf_counter()
        cs = time.process_time()
        frame = Frame(0, canvas.copy())
        out_job = FrameJob(frame, job.faces, stream_id)
        priv.apply([out_job])
        t_mech = time.perf_counter() - ts
        out_canvas = out_job.frame.image
        out = np.ascontiguousarray(out_canvas[pad : pad + img.shape[0], pad : pad + img.shape[1]])
        cache_ok = not setting.random
        r: dict[str, Any] = {"mech_s": t_mech, "fail_closed": priv.failures}
        boxes, kps, _ = _detect(out_canvas, pad, cache_ok)
        inside = M.center_inside(boxes, face_box) if len(boxes) else np.zeros(0, bool)
        r["mp_found"] = bool(inside.any())
        r["kp_disp"] = M.keypoint_displacement(kps[np.argmax(inside)], ref_kps) if inside.any() else float("nan")
        hog_boxes, hog_scores = _hog(out, cache_ok)
        r["hog_found"] = bool(M.center_inside(hog_boxes, face_box).any()) if len(hog_boxes) else False
        smap = M.ssim_map(out, img)
        r["ssim"] = M.ssim(out, img, smap=smap)
        r["ssim_face"] = M.ssim(out, img, box=face_box, smap=smap)
        r["detail_face"] = M.detail_ratio(out, img, face_box)
        for adv in _W["advs"]:
            r[f"{adv.name}.informed"] = _embed(adv, out, ref[f"{adv.name}.geom"], cache_ok)
            g = _locate(adv, out, cache_ok, hog=(hog_boxes, hog_scores) if adv.name == "dlib" else None)
            r[f"{adv.name}.naive"] = (
                _embed(adv, out, g, cache_ok) if g is not None else np.full(adv.dim, np.nan, np.float32)
            )
        r["seconds"] = time.perf_counter() - ts
        r["cpu_s"] = time.process_time() - cs
        if idx in ref.get("sample_indices", ()):
            r["image"] = out
        rec["settings"].append(r)
    if idx in ref.get("sample_indices", ()):
        rec["original"] = img
    rec["new"] = _take_new()
    rec["seconds"] = time.perf_counter() - t0
    return rec


def _video_mechanism(si: int, mode: str) -> Any:
    from ..config import load_config
    from ..builder import build_privatizer

    key = (si, mode)
    if key not in _W["video_mechs"]:
        opts: EvalOptions = _W["opts"]
        setting = _W["settings"][si]
        over = {**opts.base_overrides, **setting.overrides()}
        if mode == "fresh":
            over["mechanism.dp_image.release_interval"] = 1e-6  # a fresh release every frame
        cfg = load_config(opts.config_path, over)
        _W["video_mechs"][key] = (cfg, build_privatizer(cfg, build_setting_mechanism(setting, cfg, opts.seed)))
    return _W["video_mechs"][key]


def video_task(item: tuple[int, str, int, int, str, dict[str, Any], bool]) -> dict[str, Any]:
    """One clip: the photo sliding left 1 px per frame at 25 fps, through one setting and mode."""
    from fractions import Fraction

    from ..faces import FaceStage
    from ..track import FaceTracker
    from ..types import Frame

    idx, path, stream_id, si, mode, ref, with_desc = item
    opts: EvalOptions = _W["opts"]
    cfg, priv = _video_mechanism(si, mode)
    T = opts.video_frames
    img = _load_rgb(Path(path))
    h, w = img.shape[:2]
    pad = _pad_px(img, opts.pad)
    big = _pad(img, pad + T)
    stage: FaceStage = _W["stage"]
    stage.tracker = FaceTracker(cfg.track, 25.0)
    face_box = np.asarray(ref["box"], np.float32)
    outs, descs = [], {adv.name: [] for adv in _W["advs"]}
    t0 = time.perf_counter()
    c0 = time.process_time()
    for t in range(T):
        x0 = T + t  # the window slides right, so the face moves left by 1 px per frame
        canvas = np.ascontiguousarray(big[T : T + h + 2 * pad, x0 : x0 + w + 2 * pad])
        frame = Frame(t, canvas, pts=t, time_base=Fraction(1, 25))
        job = stage.process(frame, stream_id)
        job.stream_id = stream_id
        priv.apply([job])
        out = job.frame.image
        shift = t  # photo pixel (u, v) is at canvas (u + pad - t, v + pad)
        photo = np.ascontiguousarray(out[pad : pad + h, pad - shift : pad - shift + w])
        outs.append(photo)
        if with_desc:
            for adv in _W["advs"]:
                g = np.asarray(ref[f"{adv.name}.geom"], np.float32).copy()
                g[0::2] -= shift  # x coordinates (box and landmarks) follow the face
                crop_full = np.ascontiguousarray(out[pad : pad + h, :])
                gx = g.copy()
                gx[0::2] += pad
                descs[adv.name].append(adv.embed(crop_full, gx))
    rec: dict[str, Any] = {
        "index": idx,
        "setting": si,
        "mode": mode,
        "flicker": M.flicker(outs, face_box),
        "seconds": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }
    mech = priv.mechanism
    ledger = getattr(mech, "ledger", None)
    if ledger is not None:
        releases = sum(acc.releases for k, acc in ledger.tracks.items() if isinstance(k, tuple) and k[0] == stream_id)
        rec["releases"] = releases
        rec["epsilon_spent"] = ledger.spent(releases)[0]
    for adv in _W["advs"]:
        if with_desc:
            rec[f"{adv.name}.frames"] = np.stack(descs[adv.name])
    return rec


# ------------------------------------------------------------------------------------------------
# Main side
# ------------------------------------------------------------------------------------------------
class _Pool:
    """A process pool (or the current process when workers == 1) with the worker state set up."""

    def __init__(self, opts: EvalOptions, settings: list[Setting], cache: FeatureCache) -> None:
        self.workers = max(1, int(opts.workers))
        args = (opts, settings, cache.snapshot())
        if self.workers == 1:
            _init_worker(*args)
            self.pool = None
        else:
            ctx = mp.get_context("spawn")
            self.pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=args)

    def imap(self, fn: Any, items: list[Any]) -> Any:
        if self.pool is None:
            return map(fn, items)
        return self.pool.imap_unordered(fn, items, chunksize=1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


class _LineProgress:
    """Progress as plain lines on stderr, for runs whose output goes to a log (no terminal):
    one line per 10% or per 5 minutes, whichever comes first, with the elapsed and remaining time."""

    def __init__(self, total: int, desc: str, every_s: float = 300.0) -> None:
        self.total, self.desc, self.every_s = max(int(total), 1), desc, every_s
        self.n = 0
        self.t0 = self.last_t = time.perf_counter()
        self.last_decile = 0

    def __enter__(self) -> _LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.n and self.n < self.total and not any(exc):
            self._emit()

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.perf_counter()
        decile = 10 * self.n // self.total
        if decile > self.last_decile or now - self.last_t >= self.every_s or self.n >= self.total:
            self.last_decile, self.last_t = decile, now
            self._emit()

    def _emit(self) -> None:
        import sys

        el = time.perf_counter() - self.t0
        left = el / self.n * (self.total - self.n) if self.n else float("nan")
        print(
            f"streamdp eval: {self.desc}: {self.n}/{self.total} ({100 * self.n / self.total:.0f}%), "
            f"{el / 60:.1f} min elapsed, ~{left / 60:.1f} min left",
            file=sys.stderr,
            flush=True,
        )


def _bar(total: int, desc: str, enabled: bool, lines: bool = False) -> Any:
    from tqdm import tqdm

    if lines and not enabled:
        return _LineProgress(total, desc)
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, dynamic_ncols=True, leave=False)


@dataclass
class EvalRun:
    dataset: EvalSet
    settings: list[Setting]
    adversaries: list[dict[str, Any]]
    gallery: dict[str, Any]
    probes: list[dict[str, Any]]
    video: list[dict[str, Any]]
    timings: dict[str, float]
    options: EvalOptions
    model: dict[str, str] | None = None
    video_error: str | None = None


def snapshot_model(opts: EvalOptions, settings: list[Setting]) -> dict[str, str] | None:
    """Copy the dp-image model the settings use into the cache (or a temp dir) and point every
    dp-image setting without an explicit model at the copy: a model replaced on disk during a
    long run must not mix two models in one table. Returns the copy's metadata."""
    import shutil
    import tempfile

    from ..config import load_config
    from ..mechanisms.dp_image import resolve_model_dir
    from ..privacy import read_model_metadata

    if not any(s.family == "dp-image" and not s.params.get("model") for s in settings):
        return None
    cfg = load_config(opts.config_path, opts.base_overrides)
    src = resolve_model_dir(cfg.mechanism.dp_image.model)
    from ..mechanisms.dp_image import check_model_dir

    # the source is checked (checksums, or the explicit allow_custom_model) before it is copied;
    # the snapshot is then that same, already checked folder
    check_model_dir(src, cfg.mechanism.dp_image.allow_custom_model, tuple(f.name for f in src.iterdir() if f.suffix in (".onnx", ".npz")))
    base = Path(opts.cache_dir) / "models" if opts.cache_dir is not None else Path(tempfile.mkdtemp(prefix="streamdp-eval-"))
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="incoming-", dir=base))
    # every file of the folder: encoder.onnx and decoder.onnx (autoencoder) or encoder.onnx and
    # latent.npz (generator design)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, tmp / f.name)
    meta = read_model_metadata(tmp / "encoder.onnx")  # validates the copy (a half-written file fails here)
    if (tmp / "decoder.onnx").is_file():
        read_model_metadata(tmp / "decoder.onnx")
    dst = base / f"dpimage-{meta['streamdp.sha256'][:16]}"
    if dst.is_dir():
        shutil.rmtree(tmp)
    else:
        tmp.rename(dst)
    opts.base_overrides = {**opts.base_overrides, "mechanism.dp_image.model": str(dst),
                           "mechanism.dp_image.allow_custom_model": True}
    return {"source": str(src), "snapshot": str(dst), **meta}


def run_eval(dataset: EvalSet, settings: list[Setting], opts: EvalOptions) -> EvalRun:
    from .adversaries import adversary_class

    model_meta = snapshot_model(opts, settings)
    classes = [adversary_class(a) for a in opts.adversaries]
    for cls in classes:
        cls.prepare(opts.cache_dir)
    cache = FeatureCache(opts.cache_dir)
    t_start = time.perf_counter()
    # Load the cache namespaces the workers will read.
    probe_adv = [cls(opts.cache_dir) for cls in classes]
    for adv in probe_adv:
        for ns in (adv.namespace, adv.namespace + "-locate-central"):
            cache.namespace(ns)
    for ns in (DETECT_NS, HOG_NS):
        cache.namespace(ns)
    adv_info = [a.describe() for a in probe_adv]
    del probe_adv

    pool = _Pool(opts, settings, cache)
    timings: dict[str, float] = {}
    try:
        # 1. gallery
        t0 = time.perf_counter()
        items = [(i, str(dataset.images[i].path)) for i in dataset.gallery]
        gal: dict[int, dict[str, Any]] = {}
        with _bar(len(items), "gallery (originals)", opts.progress, opts.progress_lines) as bar:
            for rec in pool.imap(gallery_task, items):
                cache.update(rec.pop("new"))
                gal[rec["index"]] = rec
                bar.update(1)
        cache.save()
        timings["gallery_s"] = time.perf_counter() - t0
        timings["gallery_images"] = len(items)
        if pool.workers > 1:  # fresh workers that see every gallery feature (the identity row hits them)
            pool.close()
            pool = _Pool(opts, settings, cache)

        # 2. probes
        t0 = time.perf_counter()
        sample = set(dataset.probes[:SAMPLE_PROBES])
        keys = ["box", "kps"] + [f"{a['name']}.geom" for a in adv_info]
        items = []
        for n, i in enumerate(dataset.probes):
            ref = {k: gal[i][k] for k in keys}
            ref["sample_indices"] = sample
            items.append((i, str(dataset.images[i].path), 1_000_000 + n, ref))
        probes: list[dict[str, Any]] = []
        with _bar(len(items), f"probes x {len(settings)} settings", opts.progress, opts.progress_lines) as bar:
            for k, rec in enumerate(pool.imap(probe_task, items)):
                cache.update(rec.pop("new"))
                probes.append(rec)
                bar.update(1)
                if k % 50 == 49:
                    cache.save()
        cache.save()
        probes.sort(key=lambda r: r["index"])
        timings["probes_s"] = time.perf_counter() - t0
        timings["probe_images"] = len(items)

        # 3. video attack
        video: list[dict[str, Any]] = []
        video_error = None
        if opts.video_tracks > 0:
            t0 = time.perf_counter()
            vitems = []
            chosen = dataset.probes[: opts.video_tracks]
            for si, s in enumerate(settings):
                modes = ["reuse", "fresh"] if s.random and s.family == "dp-image" else ["static"]
                for mode in modes:
                    for n, i in enumerate(chosen):
                        ref = {k: gal[i][k] for k in keys}
                        sid = 2_000_000 + 10_000 * si + 100 * n + (1 if mode == "fresh" else 0)
                        vitems.append((i, str(dataset.images[i].path), sid, si, mode, ref, s.family in ("dp-image", "identity")))
            try:
                with _bar(len(vitems), "video attack (clips)", opts.progress, opts.progress_lines) as bar:
                    for rec in pool.imap(video_task, vitems):
                        video.append(rec)
                        bar.update(1)
            except Exception as exc:  # noqa: BLE001 - keep the still-image results of a long run
                log.error("video attack failed, results without it: %s", exc)
                video_error = f"{type(exc).__name__}: {exc}"
                video = []
            timings["video_s"] = time.perf_counter() - t0
            timings["video_clips"] = len(vitems)
    finally:
        pool.close()
        cache.save()
    timings["total_s"] = time.perf_counter() - t_start
    timings["workers"] = pool.workers
    timings["cache_hits_main"] = cache.hits
    return EvalRun(dataset, settings, adv_info, gal, probes, video, timings, opts, model_meta, video_error)


# ------------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------------
def aggregate(run: EvalRun) -> dict[str, Any]:
    ds = run.dataset
    gal_idx = np.array(ds.gallery)
    gal_pos = {int(i): p for p, i in enumerate(gal_idx)}
    gal_ids = np.array([ds.images[i].identity for i in gal_idx])
    probe_idx = np.array([r["index"] for r in run.probes])
    probe_ids = np.array([ds.images[i].identity for i in probe_idx])
    exclude = np.array([gal_pos.get(int(i), -1) for i in probe_idx])
    G = {a["name"]: np.stack([run.gallery[int(i)][f"{a['name']}.desc"] for i in gal_idx]) for a in run.adversaries}
    # The recognisers' false-accept rate on pairs of originals of different people at their
    # threshold (the floor of any "someone else's face" output), and the threshold at which they
    # would falsely accept exactly EQUAL_FAR of those pairs: protection there compares the two
    # recognisers at the same operating point.
    floors: dict[str, float] = {}
    far_thresholds: dict[str, float] = {}
    diff = gal_ids[:, None] != gal_ids[None, :]
    for a in run.adversaries:
        impostor = M.pairwise_l2(G[a["name"]], G[a["name"]])[diff]
        floors[a["name"]] = float((impostor <= a["threshold"]).mean()) if len(impostor) else float("nan")
        far_thresholds[a["name"]] = M.threshold_at_far(impostor, EQUAL_FAR)
    rows = []
    # per probe: the adversary's distance between output and original (for later analysis)
    per_probe: dict[str, Any] = {
        "probe": [str(ds.images[int(i)].path.name) for i in probe_idx],
        "identity": [str(x) for x in probe_ids],
        "distance": {},
    }
    for si, s in enumerate(run.settings):
        recs = [r["settings"][si] for r in run.probes]
        per_probe["distance"][s.key] = {}
        row: dict[str, Any] = {
            "setting": s.label,
            "key": s.key,
            "family": s.family,
            "params": s.params,
            "epsilon": s.epsilon,
            "n": len(recs),
        }
        for a in run.adversaries:
            name, thr = a["name"], a["threshold"]
            ref = G[name][exclude]
            for mode in ("informed", "naive"):
                Q = np.stack([r[f"{name}.{mode}"] for r in recs])
                d_same = np.linalg.norm(Q.astype(np.float64) - ref, axis=1)  # NaN when not found
                per_probe["distance"][s.key][f"{name}.{mode}"] = [round(float(x), 4) for x in d_same]
                D = M.pairwise_l2(Q, G[name])
                row[f"{name}.{mode}.protection"] = M.protection_rate(d_same, thr)
                row[f"{name}.{mode}.rank1"] = float(M.rank1(D, probe_ids, gal_ids, exclude).mean())
                counts = M.verification_counts(D, thr, probe_ids, gal_ids, exclude)
                row[f"{name}.{mode}.verification"] = M.balanced_accuracy(counts)
                row[f"{name}.{mode}.genuine_accept"] = counts[0] / max(counts[1], 1)
                row[f"{name}.{mode}.impostor_accept"] = 1.0 - counts[2] / max(counts[3], 1)
                row[f"{name}.{mode}.distance_median"] = float(np.nanmedian(d_same)) if np.isfinite(d_same).any() else float("nan")
                if mode == "naive":
                    row[f"{name}.naive.found"] = float(np.isfinite(d_same).mean())
                else:
                    row[f"{name}.informed.protection_equal_far"] = M.protection_rate(d_same, far_thresholds[name])
                    # realism as the recogniser sees it: outputs vs all original gallery photos
                    row[f"{name}.fd"] = M.frechet_distance(Q, G[name])
        row["mediapipe_detect"] = float(np.mean([r["mp_found"] for r in recs]))
        row["hog_detect"] = float(np.mean([r["hog_found"] for r in recs]))
        row["ssim"] = float(np.nanmean([r["ssim"] for r in recs]))
        row["ssim_face"] = float(np.nanmean([r["ssim_face"] for r in recs]))
        row["detail_face"] = float(np.nanmedian([r.get("detail_face", np.nan) for r in recs]))
        kp = np.array([r["kp_disp"] for r in recs], np.float64)
        row["kp_displacement_median"] = float(np.nanmedian(kp)) if np.isfinite(kp).any() else float("nan")
        row["mech_ms"] = 1000 * float(np.mean([r["mech_s"] for r in recs]))
        row["wall_ms"] = 1000 * float(np.mean([r["seconds"] for r in recs]))
        row["cpu_ms"] = 1000 * float(np.mean([r["cpu_s"] for r in recs]))
        row["fail_closed_batches"] = int(max((r["fail_closed"] for r in recs), default=0))
        rows.append(row)

    video_rows = []
    by: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for v in run.video:
        by.setdefault((v["setting"], v["mode"]), []).append(v)
    for (si, mode), vs in sorted(by.items()):
        s = run.settings[si]
        vr: dict[str, Any] = {
            "setting": s.label,
            "key": s.key,
            "epsilon": s.epsilon,
            "mode": mode,
            "tracks": len(vs),
            "frames": run.options.video_frames,
            "flicker": float(np.nanmean([v["flicker"] for v in vs])),
        }
        if "epsilon_spent" in vs[0]:
            # all tracks of a clip are one person: the clip's releases compose
            vr["epsilon_per_track"] = float(np.max([v["epsilon_spent"] for v in vs]))  # worst clip
            vr["epsilon_per_clip_mean"] = float(np.mean([v["epsilon_spent"] for v in vs]))
            vr["releases_per_track"] = float(np.mean([v["releases"] for v in vs]))
        for a in run.adversaries:
            name, thr = a["name"], a["threshold"]
            if f"{name}.frames" not in vs[0]:
                continue
            vidx = np.array([v["index"] for v in vs])
            vex = np.array([gal_pos[int(i)] for i in vidx])
            vids = np.array([ds.images[i].identity for i in vidx])
            ref = G[name][vex]
            frames = np.stack([v[f"{name}.frames"] for v in vs])  # (n, T, dim)
            single = np.linalg.norm(frames.astype(np.float64) - ref[:, None, :], axis=2)
            from .adversaries import adversary_class

            avg_fn = adversary_class(name).average
            avg = np.stack([avg_fn(f) for f in frames])
            d_avg = np.linalg.norm(avg.astype(np.float64) - ref, axis=1)
            vr[f"{name}.frame.protection"] = float(M.protected(single, thr).mean())
            vr[f"{name}.averaged.protection"] = M.protection_rate(d_avg, thr)
            vr[f"{name}.averaged.rank1"] = float(M.rank1(M.pairwise_l2(avg, G[name]), vids, gal_ids, vex).mean())
            vr[f"{name}.frame.distance_median"] = float(np.median(single))
            vr[f"{name}.averaged.distance_median"] = float(np.median(d_avg))
        video_rows.append(vr)

    gal = run.gallery.values()
    t = run.timings
    n_probe_settings = max(1, len(run.probes) * len(run.settings))
    summary = {
        "dataset": ds.describe(),
        "dp_image_model": run.model,
        "video_error": run.video_error,
        "adversaries": run.adversaries,
        "pipeline_found_original": float(np.mean([g["found_pipeline"] for g in gal])),
        "pipeline_found_probes": float(np.mean([r["pipeline_faces"] > 0 for r in run.probes])),
        "hog_found_original": float(np.mean([g["found_hog"] for g in gal])),
        # share of pairs of originals of *different* people the adversary calls the same person:
        # the best protection any mechanism can show is about 1 minus this
        "impostor_accept_originals": floors,
        "equal_far": EQUAL_FAR,
        "equal_far_thresholds": far_thresholds,
        **{f"{a['name']}_found_original": float(np.mean([g[f"{a['name']}.found"] for g in gal])) for a in run.adversaries},
        "timings": {
            **t,
            "per_gallery_image_s": t.get("gallery_s", 0) / max(1, t.get("gallery_images", 1)),
            "per_probe_setting_s": t.get("probes_s", 0) / n_probe_settings,
            "per_probe_setting_cpu_s": float(np.mean([s["cpu_s"] for r in run.probes for s in r["settings"]])) if run.probes else float("nan"),
            "per_gallery_image_cpu_s": float(np.mean([g["cpu_s"] for g in gal])) if run.gallery else float("nan"),
            "per_video_clip_cpu_s": float(np.mean([v["cpu_s"] for v in run.video])) if run.video else float("nan"),
        },
    }
    return {"summary": summary, "rows": rows, "video": video_rows, "per_probe": per_probe}


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def projected_full_split_s(summary: dict[str, Any], n_gallery: int, n_probes: int, n_settings: int, workers: int) -> float:
    """Wall time to expect for another split size, from this run's per-item costs."""
    t = summary["timings"]
    per_g = t["per_gallery_image_s"]
    per_p = t["per_probe_setting_s"]
    if not math.isfinite(per_p):
        return float("nan")
    return n_gallery * per_g + n_probes * n_settings * per_p
