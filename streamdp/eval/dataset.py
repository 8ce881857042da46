"""Evaluation data: a folder of identity sub-folders of face photos, filtered by a splits file.

Layout: ``DATASET/<Person>/*.jpg|png|...`` (LFW's layout). Identities come from the folder names.
When a splits file is given (or ``DATASET/../splits.json`` exists), only the identities listed
under its key (default ``lfw_eval_identities``) are used, and an identity that is also listed
under any ``*train*`` key of that file is refused: the evaluation never sees a face the model was
trained on.

Protocol (deterministic):

- identities with at least two photos (a probe needs another photo of the person in the gallery);
- ``limit`` N: N identities drawn with a fixed seed (spread over the alphabet, not the first N);
- probe: the first ``probes_per_identity`` photos (sorted by name) of each identity;
- gallery: up to ``gallery_per_identity`` photos of each selected identity (the probes included;
  a probe is never compared with its own photo when ranking).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DEFAULT_SPLIT_KEY = "lfw_eval_identities"


@dataclass
class EvalImage:
    index: int
    path: Path
    identity: int  # index into EvalSet.identities


@dataclass
class EvalSet:
    root: Path
    identities: list[str]
    images: list[EvalImage]
    probes: list[int]  # indices into images
    gallery: list[int]  # indices into images
    split_file: Path | None = None
    split_key: str | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "root": str(self.root),
            "split_file": str(self.split_file) if self.split_file else None,
            "split_key": self.split_key,
            "identities": len(self.identities),
            "probes": len(self.probes),
            "gallery": len(self.gallery),
            "notes": self.notes,
        }


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_split(split_file: Path, key: str) -> tuple[list[str], set[str]]:
    """(identities under ``key``, identities under every key naming training data)."""
    try:
        data = json.loads(Path(split_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read splits file {split_file}: {exc}") from None
    if not isinstance(data, dict) or key not in data:
        keys = ", ".join(data) if isinstance(data, dict) else "(not a mapping)"
        raise ConfigError(f"splits file {split_file} has no key {key!r} (has {keys})")
    train: set[str] = set()
    for k, v in data.items():
        if "train" in k and k != key and isinstance(v, list):
            train.update(map(str, v))
    return [str(x) for x in data[key]], train


def load_dataset(
    root: str | Path,
    *,
    split_file: str | Path | None = None,
    split_key: str | None = None,
    limit: int | None = None,
    probes_per_identity: int = 1,
    gallery_per_identity: int = 10,
    seed: int = 0,
) -> EvalSet:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    if split_file is None and (root.parent / "splits.json").is_file():
        split_file = root.parent / "splits.json"
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    notes: list[str] = []
    if split_file is not None:
        split_file = Path(split_file)
        key = split_key or DEFAULT_SPLIT_KEY
        wanted, train = load_split(split_file, key)
        leak = sorted(set(wanted) & train)
        if leak:
            raise ConfigError(
                f"split {key!r} of {split_file} lists {len(leak)} training identities (e.g. {leak[0]}): refusing to evaluate on them"
            )
        present = set(names)
        missing = [w for w in wanted if w not in present]
        if missing:
            notes.append(f"{len(missing)} identities of the split have no folder (e.g. {missing[0]})")
        names = sorted(w for w in set(wanted) if w in present)
        split_key = key
    elif split_key is not None:
        raise ConfigError("--split needs a splits file (--splits FILE)")
    photos = {n: _photos(root / n) for n in names}
    names = [n for n in names if len(photos[n]) >= 2]
    if not names:
        raise InputError(f"no identity folder with at least two photos under {root}")
    if limit is not None and limit < len(names):
        if limit < 1:
            raise ConfigError("--limit must be >= 1")
        names = sorted(random.Random(seed).sample(names, limit))
    images: list[EvalImage] = []
    probes: list[int] = []
    gallery: list[int] = []
    k_probe = max(1, int(probes_per_identity))
    k_gal = max(k_probe + 1, int(gallery_per_identity))
    for ident, name in enumerate(names):
        for j, path in enumerate(photos[name][:k_gal]):
            idx = len(images)
            images.append(EvalImage(idx, path, ident))
            gallery.append(idx)
            if j < k_probe:
                probes.append(idx)
    return EvalSet(root, names, images, probes, gallery, Path(split_file) if split_file else None, split_key, notes)
