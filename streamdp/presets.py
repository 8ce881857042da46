"""Configuration presets by name: ``--config relay`` is the shipped ``relay.yaml``.

The presets live in the repository's ``configs/`` folder; ``streamdp/configs`` links to it, so a
wheel ships them inside the package (``package-data``: ``configs/*.yaml``) and a source checkout
reads them in place. A path that exists always wins over a preset of the same name: a local
``relay.yaml`` is what ``--config relay.yaml`` means in its folder.

Only the standard library here: every CLI parser calls ``config_path`` at parse time.
"""

from __future__ import annotations

from pathlib import Path

# Not configurations of the anonymizer (another schema): never offered by name.
_NOT_PRESETS = {"train"}
_SUFFIX = ".yaml"


def preset_dirs() -> list[Path]:
    """Where presets are looked for, first match wins: the package's copy, then the checkout's."""
    package = Path(__file__).resolve().parent
    return [package / "configs", package.parent / "configs"]


def preset_names() -> list[str]:
    """Every preset's name (the file name without ``.yaml``), sorted."""
    names: set[str] = set()
    for folder in preset_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob(f"*{_SUFFIX}") if p.stem not in _NOT_PRESETS)
    return sorted(names)


def preset_path(name: str) -> Path | None:
    """The file of preset ``name`` (``relay`` or ``relay.yaml``), or None when there is none."""
    stem = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name
    if not stem or stem in _NOT_PRESETS or "/" in stem or "\\" in stem or stem.startswith("."):
        return None
    for folder in preset_dirs():
        candidate = folder / f"{stem}{_SUFFIX}"
        if candidate.is_file():
            return candidate
    return None


def config_path(text: str | Path) -> Path:
    """A ``--config`` value as a path: the file when it exists, else the preset of that name, else
    the path unchanged (``load_config`` then says it is not found). For argparse's ``type=``."""
    path = Path(text)
    if path.exists():
        return path
    return preset_path(str(text)) or path


def preset_summary(path: Path) -> str:
    """The first comment line of a preset (what it is for)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""
