"""What a mechanism module declares about itself, and what the pipeline tells a mechanism.

A mechanism is one module in ``streamdp/mechanisms/`` with a module-level ``MECHANISMS`` list of
``MechanismSpec``. The registry (``registry.py``) finds those modules; the configuration schema
(``config.MechanismConfig``: one section per mechanism), the CLIs' ``--mechanism`` help, the live
fallback choices and the evaluation's sweep all read these declarations. Nothing else lists
mechanisms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config_base import Section

if TYPE_CHECKING:
    from .base import Mechanism


@dataclass(frozen=True)
class MechanismContext:
    """The facts of the pipeline around a mechanism, given by the pipeline builder (never read
    from another stage's configuration by the mechanism itself)."""

    # The tracker grows every cover box by this fraction on each side; model mechanisms undo it
    # to find the face inside the box.
    box_margin: float = 0.2
    # The most frames the micro-batcher hands over at once (model mechanisms size their batches).
    max_batch: int = 16


@dataclass(frozen=True)
class MechanismSpec:
    """One mechanism as the rest of streamdp sees it."""

    name: str  # what users type: ``--mechanism NAME``, ``mechanism.name``
    summary: str  # one line for the CLI help and the docs
    # Its configuration section, ``mechanism.<name with - as _>``; None: it has no settings.
    settings: type[Section] | None
    # ``factory(mechanism_config, context) -> Mechanism``; ``mechanism_config`` is the whole
    # ``mechanism`` section (a model mechanism may use a cover mechanism's settings for the faces
    # it cannot model), ``context`` the pipeline facts.
    factory: Callable[[Any, MechanismContext], Mechanism]
    # A cheap cover with no model: usable as the live deadline fallback and the fail-closed cover.
    cover: bool = False
    # The evaluation's sweep: turns a sweep point's parameters into config overrides; with
    # ``sweep_params`` (parameter -> type) naming what a sweep may set.
    sweep_params: dict[str, type] | None = None
    sweep_overrides: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    @property
    def section(self) -> str:
        return self.name.replace("-", "_")
