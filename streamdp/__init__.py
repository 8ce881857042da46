"""streamdp: a streaming video privacy pipeline that replaces faces with privatized faces.

As a library (see ``streamdp.api`` and the README's "Python API")::

    import streamdp
    entry = streamdp.anonymize_file("in.mp4", "out.mp4", mechanism="pixelate")
    with streamdp.Anonymizer(mechanism="pixelate", fps=25.0) as anon:
        result = anon.process(rgb)  # result.image, result.faces

The names below are loaded on first use: ``import streamdp`` itself imports nothing heavy (no
numpy, OpenCV or model runtime), so the command line and tools that only read ``__version__``
stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module (of this package) that defines it
_LAZY = {
    "anonymize_file": "api",
    "Anonymizer": "api",
    "AnonymizedFrame": "api",
    "Face": "api",
    "FrameError": "api",
    "build_config": "api",
    "Config": "config",
    "load_config": "config",
    "StreamdpError": "errors",
    "ConfigError": "errors",
    "InputError": "errors",
    "OutputError": "errors",
    "ModelError": "errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
