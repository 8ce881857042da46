"""A content-addressed feature cache: (namespace, key) -> float32 vector, one ``.npz`` per namespace.

Keys are hashes of what the feature was computed from: the image bytes (sha1 of the decoded
array, or of the file for originals) plus the geometry used, and the namespace names the
extractor and its version (e.g. ``dlib-resnet-v1.<model sha>``). So a rerun, or another
mechanism that leaves an image unchanged, finds the features instead of recomputing them; a
changed model gets a new namespace. Mechanisms with fresh randomness (dp-image, DP-Pix) produce
new images each run and never hit, as they should.

Files are written atomically (temporary file + rename); a corrupt file is ignored (recomputed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamdp" / "eval"


def array_key(image: np.ndarray, *extra: object) -> str:
    """sha1 of an array's shape and bytes plus any extra values (e.g. a geometry)."""
    h = hashlib.sha1()
    a = np.ascontiguousarray(image)
    h.update(str((a.shape, a.dtype.str)).encode())
    h.update(a.tobytes())
    for e in extra:
        if isinstance(e, np.ndarray):
            h.update(np.ascontiguousarray(e, dtype=np.float32).tobytes())
        else:
            h.update(repr(e).encode())
    return h.hexdigest()


def file_key(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


class FeatureCache:
    """In-memory dicts backed by ``<dir>/<namespace>.npz``; ``None`` dir: memory only."""

    def __init__(self, directory: str | Path | None) -> None:
        self.dir = Path(directory) if directory is not None else None
        self.data: dict[str, dict[str, np.ndarray]] = {}
        self.dirty: set[str] = set()
        self.hits = 0
        self.misses = 0

    def _file(self, ns: str) -> Path:
        assert self.dir is not None
        return self.dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", ns) + ".npz")

    def namespace(self, ns: str) -> dict[str, np.ndarray]:
        table = self.data.get(ns)
        if table is not None:
            return table
        table = {}
        if self.dir is not None and self._file(ns).is_file():
            try:
                with np.load(self._file(ns), allow_pickle=False) as z:
                    keys, values, offsets = z["keys"], z["values"], z["offsets"]
                for i, k in enumerate(keys):
                    table[str(k)] = values[offsets[i] : offsets[i + 1]]
            except Exception as exc:  # noqa: BLE001 - a bad cache file is only a slower run
                log.warning("ignoring unreadable cache %s: %s", self._file(ns), exc)
                table = {}
        self.data[ns] = table
        return table

    def get(self, ns: str, key: str) -> np.ndarray | None:
        v = self.namespace(ns).get(key)
        if v is None:
            self.misses += 1
        else:
            self.hits += 1
        return v

    def put(self, ns: str, key: str, value: np.ndarray) -> None:
        self.namespace(ns)[key] = np.asarray(value, dtype=np.float32).reshape(-1)
        self.dirty.add(ns)

    def update(self, entries: list[tuple[str, str, np.ndarray]]) -> None:
        for ns, key, value in entries:
            self.put(ns, key, value)

    def snapshot(self) -> dict[str, dict[str, np.ndarray]]:
        return self.data

    def save(self) -> None:
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for ns in sorted(self.dirty):
            table = self.data[ns]
            keys = np.array(sorted(table), dtype="U40")
            vals = [table[str(k)] for k in keys]
            offsets = np.zeros(len(vals) + 1, dtype=np.int64)
            if vals:
                offsets[1:] = np.cumsum([len(v) for v in vals])
            values = np.concatenate(vals) if vals else np.zeros(0, np.float32)
            path = self._file(ns)
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez(tmp, keys=keys, values=values, offsets=offsets)
            tmp.replace(path)
        self.dirty.clear()
