"""Which model files may be loaded: streamdp's own, checked against their shipped checksums, and a
user's own only when the configuration says so explicitly.

Why: a model file decides what the privacy mechanism sees (the encoder) and what the detector
misses. A corrupted or swapped file must not load silently, and pointing ``mechanism.dp_image.model``
at another folder is a deliberate act (``mechanism.dp_image.allow_custom_model: true``), whose
privacy metadata is then still validated (``privacy.mechanisms.validate_metadata``).

``models/SHA256SUMS`` lists every file under ``streamdp/models`` and the face generator's files
from the pinned ``random-face`` wheel (``random-face:NAME``). ``write_manifest()`` regenerates the
package part after a retraining (``make train-gan`` calls it through ``train/export.py``).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from .errors import ModelError

MODELS = Path(__file__).resolve().parent / "models"
MANIFEST = MODELS / "SHA256SUMS"
_GENERATOR_PREFIX = "random-face:"
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process
_lock = threading.Lock()


def packaged_model(name: str) -> Path:
    """A model file shipped inside the package (``streamdp/models/NAME``)."""
    try:
        from importlib.resources import files

        p = Path(str(files("streamdp") / "models" / name))
        if p.is_file():
            return p
    except Exception:  # pragma: no cover - zipped installs etc.
        pass
    return MODELS / name


def _manifest() -> dict[str, str]:
    if not MANIFEST.is_file():
        raise ModelError(f"model checksum list missing: {MANIFEST}")
    out: dict[str, str] = {}
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, name = line.split(None, 1)
        out[name.strip()] = digest
    return out


def sha256_of(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _verified:
            return _verified[key]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _lock:
        _verified[key] = digest
    return digest


def is_shipped(path: Path) -> bool:
    """Whether ``path`` lies inside streamdp's own model folder."""
    try:
        Path(path).resolve().relative_to(MODELS)
        return True
    except ValueError:
        return False


def verify_shipped(path: Path) -> None:
    """Refuse a file of streamdp's model folder whose checksum is not the shipped one."""
    path = Path(path).resolve()
    rel = path.relative_to(MODELS).as_posix()
    want = _manifest().get(rel)
    if want is None:
        raise ModelError(f"model file {path} is not in streamdp's checksum list ({MANIFEST.name})")
    if sha256_of(path) != want:
        raise ModelError(f"model file {path} does not match its shipped checksum (corrupted or replaced): reinstall streamdp")


def verify_generator_file(path: Path) -> None:
    """Refuse a face generator file that is not the pinned random-face wheel's."""
    want = _manifest().get(_GENERATOR_PREFIX + Path(path).name)
    if want is None:
        raise ModelError(f"face generator file {path} is not in streamdp's checksum list")
    if sha256_of(Path(path)) != want:
        raise ModelError(
            f"face generator file {path} does not match random-face==2021.7.21.1's (corrupted, or another version): "
            "pip install --no-deps --force-reinstall random-face==2021.7.21.1"
        )


def check_model_path(path: Path, allow_custom: bool, what: str = "model") -> None:
    """Streamdp's own files are checksum-verified; any other needs ``allow_custom``."""
    if is_shipped(path):
        verify_shipped(path)
    elif not allow_custom:
        raise ModelError(
            f"{what} {path} is not one of streamdp's own: set mechanism.dp_image.allow_custom_model: true to use it "
            "(its privacy metadata is still checked)"
        )


def write_manifest() -> None:
    """Rewrite the package part of SHA256SUMS from the files now under ``streamdp/models``."""
    old = _manifest() if MANIFEST.is_file() else {}
    lines = ["# sha256 of every model file streamdp ships (streamdp/model_files.py checks them before loading)"]
    for p in sorted(MODELS.rglob("*")):
        if p.is_file() and p.suffix in (".onnx", ".tflite", ".npz"):
            lines.append(f"{sha256_of(p)}  {p.relative_to(MODELS).as_posix()}")
    lines.append("# the face generator's files, from the pinned random-face==2021.7.21.1 wheel (random_face/data/)")
    lines += [f"{d}  {n}" for n, d in old.items() if n.startswith(_GENERATOR_PREFIX)]
    MANIFEST.write_text("\n".join(lines) + "\n", encoding="utf-8")
