from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MEDIA = SHARED / "media"
FACES = SHARED / "data" / "faces"


needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"shared media not found at {MEDIA}")
needs_faces = pytest.mark.skipif(
    not (FACES / "splits.json").is_file(), reason=f"shared face photographs not found at {FACES}"
)


def read_rgb(path: Path):  # type: ignore[no-untyped-def]
    """An image file as an RGB uint8 array (OpenCV reads BGR)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the shared data folder beside the checkout is absent)")
    return path


@pytest.fixture
def media() -> Path:
    return need_shared(MEDIA)


@pytest.fixture
def faces_dir() -> Path:
    return need_shared(FACES)
