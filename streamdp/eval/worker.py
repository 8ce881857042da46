"""The worker processes' state: one face stage, every setting's privatizer, the adversaries, the cache.

Each worker (or the main process when ``workers == 1``) builds this once (``init_worker``); the
tasks in ``probe.py`` and ``video_attack.py`` read it. Features computed in a worker are kept in
its cache snapshot and handed back with each task's record (``take_new``), so the main process
can merge them into the on-disk ``FeatureCache``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from typing import Any

import numpy as np

from .cache import FeatureCache
from .options import EvalOptions
from .settings import Setting, build_setting_mechanism, setting_config

WORKER: dict[str, Any] = {}


def init_worker(opts: EvalOptions, settings: list[Setting], snapshot: dict[str, dict[str, np.ndarray]]) -> None:
    from ..config import load_config
    from ..builder import build_face_stage, build_privatizer
    from .adversaries import adversary_class, limit_threads

    if opts.workers > 1:
        limit_threads()
        # Worker processes: their per-image warnings would interleave with the progress bars. In
        # the main process (workers == 1) the user's logging is left alone (it silenced every
        # later streamdp warning in the process).
        logging.getLogger("streamdp").setLevel(logging.ERROR)
    base = load_config(opts.config_path, opts.base_overrides)
    WORKER.clear()
    WORKER["opts"] = opts
    WORKER["config"] = base
    WORKER["stage"] = build_face_stage(base, fps=1.0)
    WORKER["settings"] = settings
    WORKER["configs"] = [setting_config(s, opts.config_path, opts.base_overrides) for s in settings]
    WORKER["privatizers"] = [
        build_privatizer(c, build_setting_mechanism(s, c, opts.seed)) for s, c in zip(settings, WORKER["configs"])
    ]
    WORKER["advs"] = [adversary_class(a)(opts.cache_dir) for a in opts.adversaries]
    WORKER["cache"] = snapshot
    WORKER["new"] = []
    try:
        import dlib

        WORKER["hog"] = dlib.get_frontal_face_detector()
    except ImportError:
        WORKER["hog"] = None
    WORKER["video_mechs"] = {}


def cache_get(ns: str, key: str) -> np.ndarray | None:
    return WORKER["cache"].get(ns, {}).get(key)


def cache_put(ns: str, key: str, value: np.ndarray) -> None:
    value = np.asarray(value, np.float32).reshape(-1)
    WORKER["cache"].setdefault(ns, {})[key] = value
    WORKER["new"].append((ns, key, value))


def take_new() -> list[tuple[str, str, np.ndarray]]:
    new, WORKER["new"] = WORKER["new"], []
    return new


class WorkerPool:
    """A process pool (or the current process when workers == 1) with the worker state set up."""

    def __init__(self, opts: EvalOptions, settings: list[Setting], cache: FeatureCache) -> None:
        self.workers = max(1, int(opts.workers))
        args = (opts, settings, cache.snapshot())
        if self.workers == 1:
            init_worker(*args)
            self.pool = None
        else:
            ctx = mp.get_context("spawn")
            self.pool = ctx.Pool(self.workers, initializer=init_worker, initargs=args)

    def imap(self, fn: Any, items: list[Any]) -> Any:
        if self.pool is None:
            return map(fn, items)
        return self.pool.imap_unordered(fn, items, chunksize=1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))
