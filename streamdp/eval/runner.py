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

Modules: this one drives the phases (``run_eval``); ``worker`` holds the worker processes' state
and pool, ``measure`` the cached per-image measurements, ``probe`` the gallery and probe tasks,
``video_attack`` the clip task, ``model_snapshot`` the model copy, ``progress`` the bars,
``aggregate`` the rows. ``options`` has the typed values passed between them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .aggregate import aggregate
from .cache import FeatureCache
from .dataset import EvalSet
from .measure import DETECT_NS, HOG_NS
from .model_snapshot import snapshot_model
from .options import EvalOptions, EvalRun
from .probe import gallery_task, probe_task
from .progress import progress_bar
from .settings import Setting
from .video_attack import video_task
from .worker import WorkerPool, default_workers

# re-exported: the names importers know from this module
__all__ = ["EvalOptions", "EvalRun", "aggregate", "default_workers", "run_eval", "snapshot_model"]

log = logging.getLogger(__name__)

SAMPLE_PROBES = 4  # probes whose outputs are kept for the sample grid


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

    pool = WorkerPool(opts, settings, cache)
    timings: dict[str, float] = {}
    try:
        # 1. gallery
        t0 = time.perf_counter()
        items = [(i, str(dataset.images[i].path)) for i in dataset.gallery]
        gal: dict[int, dict[str, Any]] = {}
        with progress_bar(len(items), "gallery (originals)", opts.progress, opts.progress_lines) as bar:
            for rec in pool.imap(gallery_task, items):
                cache.update(rec.pop("new"))
                gal[rec["index"]] = rec
                bar.update(1)
        cache.save()
        timings["gallery_s"] = time.perf_counter() - t0
        timings["gallery_images"] = len(items)
        if pool.workers > 1:  # fresh workers that see every gallery feature (the identity row hits them)
            pool.close()
            pool = WorkerPool(opts, settings, cache)

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
        with progress_bar(len(items), f"probes x {len(settings)} settings", opts.progress, opts.progress_lines) as bar:
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
                with progress_bar(len(vitems), "video attack (clips)", opts.progress, opts.progress_lines) as bar:
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
