"""The mechanism registry: every module of this package that declares ``MECHANISMS``.

Adding a mechanism is adding one module here (see ``mask.py``, the smallest); its name, config
section, CLI help, fallback eligibility and evaluation sweep come from its declaration. Declaring
modules stay light at import time (heavy libraries are imported inside their factories), so
discovering them costs a few milliseconds and a pixel run never loads onnxruntime.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .spec import MechanismContext, MechanismSpec

if TYPE_CHECKING:
    from .base import Mechanism

_NOT_MECHANISMS = {"base", "registry", "spec"}
# The order users see: the cheap covers first, as before; anything else after, by name.
_PREFERRED = ["pixelate", "blur", "solid"]


@lru_cache(maxsize=1)
def mechanism_specs() -> dict[str, MechanismSpec]:
    """Name -> spec for every declared mechanism."""
    from . import __path__ as package_path

    found: dict[str, MechanismSpec] = {}
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if info.name in _NOT_MECHANISMS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        for spec in getattr(module, "MECHANISMS", ()):
            if spec.name in found:
                raise RuntimeError(f"mechanism {spec.name!r} declared twice ({module.__name__})")
            found[spec.name] = spec
    order = sorted(found, key=lambda n: (_PREFERRED.index(n) if n in _PREFERRED else len(_PREFERRED), n))
    return {name: found[name] for name in order}


def available_mechanisms() -> list[str]:
    return list(mechanism_specs())


def cover_mechanisms() -> list[str]:
    """Mechanisms with no model, cheap enough to be the live fallback."""
    return [name for name, spec in mechanism_specs().items() if spec.cover]


def mechanism_help() -> str:
    """One line for ``--mechanism``: the names, each with its summary."""
    return "; ".join(f"{s.name}: {s.summary}" for s in mechanism_specs().values())


def spec_of(name: str) -> MechanismSpec:
    specs = mechanism_specs()
    if name not in specs:
        raise ConfigError(f"unknown mechanism {name!r} (choose from {', '.join(specs)})")
    return specs[name]


def create_mechanism(mechanism_config: Any, context: MechanismContext, name: str | None = None) -> Mechanism:
    """Build the mechanism ``name`` (default: ``mechanism_config.name``) from its declaration."""
    return spec_of(name or mechanism_config.name).factory(mechanism_config, context)
