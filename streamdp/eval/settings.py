"""What to evaluate: mechanism specs (``NAME[:key=value,...]``) -> settings -> mechanisms.

Names: ``identity`` (control: the face untouched), ``blur`` (``sigma`` = sigma as a fraction of
the box), ``pixelate`` (``blocks``), ``solid``, ``dp-pix`` (``b``, ``m``, ``epsilon``),
``dp-image`` (``epsilon``, ``mechanism`` = laplace | metric | gaussian | identity-only | none,
``model``). ``default`` expands to the default sweep (``default_sweep``). ``--epsilon E ...``
expands every epsilon-taking spec that names no epsilon into one setting per value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, load_config
from ..errors import ConfigError

# Baselines only the evaluation has (no pipeline mechanism): the untouched face and DP-Pix.
# Every pipeline mechanism that declares a sweep (its MechanismSpec) is evaluable too.
_BASELINE_PARAMS: dict[str, dict[str, type]] = {
    "identity": {},
    "dp-pix": {"b": int, "m": int, "epsilon": float},
}


def _sweepable() -> dict[str, Any]:
    from ..mechanisms.registry import mechanism_specs

    return {name: spec for name, spec in mechanism_specs().items() if spec.sweep_params is not None}


def family_params() -> dict[str, dict[str, type]]:
    """Evaluable name -> the parameters a sweep may set."""
    return {**_BASELINE_PARAMS, **{name: dict(spec.sweep_params) for name, spec in _sweepable().items()}}


def families() -> list[str]:
    names = list(family_params())
    return ["identity"] + [n for n in names if n not in ("identity", "dp-pix")] + ["dp-pix"]
DP_PIX_DEFAULT = {"b": 16, "m": 16, "epsilon": 1.0}
# Besides the config's default epsilon. The sweep is sized so that the full LFW evaluation split
# runs in under an hour on 2 cores (docs/results.md, Runtime); add settings with --mechanism.
DP_IMAGE_SWEEP_EPSILONS = (512.0, 2048.0)


@dataclass
class Setting:
    family: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def epsilon(self) -> float | None:
        """The per-face epsilon (inf for dp-image without noise; None: no formal guarantee)."""
        if self.family == "dp-image":
            return math.inf if self.params.get("mechanism") == "none" else float(self.params["epsilon"])
        if self.family == "dp-pix":
            return float(self.params["epsilon"])
        return None

    @property
    def random(self) -> bool:
        """Fresh randomness per output (so outputs are never cached)."""
        return self.family == "dp-pix" or (self.family == "dp-image" and self.params.get("mechanism") != "none")

    @property
    def label(self) -> str:
        p = self.params
        if self.family == "blur":
            return f"blur (sigma {p['sigma']:g} x box)"
        if self.family == "pixelate":
            return f"pixelate ({p['blocks']} blocks)"
        if self.family == "dp-pix":
            return f"DP-Pix (b={p['b']}, m={p['m']})"
        if self.family == "dp-image":
            mech = p.get("mechanism", "laplace")
            name = "dp-image, no noise (reconstruction)" if mech == "none" else f"dp-image ({mech})"
            if "context_blur" in p:
                name += f", context blur {p['context_blur']:g}"
            return name + (f" [{Path(p['model']).name}]" if p.get("model") else "")
        if self.family == "identity":
            return "original (no protection)"
        extra = ", ".join(f"{k} {v}" for k, v in sorted(p.items()))
        return f"{self.family} ({extra})" if extra else self.family

    @property
    def key(self) -> str:
        parts = ",".join(f"{k}={self.params[k]}" for k in sorted(self.params))
        return f"{self.family}:{parts}" if parts else self.family

    def overrides(self) -> dict[str, Any]:
        """Config overrides that make ``build_mechanism`` build this setting."""
        spec = _sweepable().get(self.family)
        if spec is None:  # an evaluation baseline: built by build_setting_mechanism
            return {}
        return {"mechanism.name": self.family, **(spec.sweep_overrides(self.params) if spec.sweep_overrides else {})}


def _parse_value(family: str, key: str, raw: str) -> Any:
    kinds = family_params()[family]
    if key not in kinds:
        allowed = ", ".join(kinds) or "none"
        raise ConfigError(f"mechanism {family!r} has no parameter {key!r} (parameters: {allowed})")
    try:
        return kinds[key](raw)
    except ValueError:
        raise ConfigError(f"{family}: {key}={raw!r} is not a {kinds[key].__name__}") from None


def default_sweep(config: Config) -> list[str]:
    m = config.mechanism
    blocks = sorted({m.pixelate.blocks, 16})
    eps = sorted({m.dp_image.epsilon, *DP_IMAGE_SWEEP_EPSILONS})
    return [
        "identity",
        f"blur:sigma={m.blur.sigma_fraction}",
        *[f"pixelate:blocks={b}" for b in blocks],
        "solid",
        f"dp-pix:epsilon={DP_PIX_DEFAULT['epsilon']:g}",
        "dp-image:mechanism=none",
        *[f"dp-image:mechanism={m.dp_image.mechanism},epsilon={e:g}" for e in eps],
    ]


def parse_settings(specs: list[str], epsilons: list[float] | None, config: Config) -> list[Setting]:
    """Specs (comma lists allowed inside one argument only after a colon) -> unique settings."""
    expanded: list[str] = []
    for spec in specs:
        if spec.strip() in ("default", "sweep", "all"):
            expanded.extend(default_sweep(config))
        else:
            expanded.append(spec.strip())
    out: list[Setting] = []
    seen: set[str] = set()
    for spec in expanded:
        name, _, rest = spec.partition(":")
        name = name.strip()
        if name not in family_params():
            raise ConfigError(f"unknown mechanism {name!r} for eval (choose from {', '.join(families())}, or 'default')")
        params: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in rest.split(","))):
            if "=" not in item:
                raise ConfigError(f"bad mechanism parameter {item!r} in {spec!r} (want key=value)")
            k, v = item.split("=", 1)
            params[k.strip()] = _parse_value(name, k.strip(), v.strip())
        variants = [params]
        takes_eps = "epsilon" in family_params()[name] and not (name == "dp-image" and params.get("mechanism") == "none")
        if takes_eps and "epsilon" not in params and epsilons:
            variants = [{**params, "epsilon": float(e)} for e in epsilons]
        for p in variants:
            s = Setting(name, _complete(name, p, config))
            if s.key not in seen:
                seen.add(s.key)
                out.append(s)
    if not out:
        raise ConfigError("no mechanism to evaluate")
    return out


def _complete(family: str, p: dict[str, Any], config: Config) -> dict[str, Any]:
    m = config.mechanism
    p = dict(p)
    if family == "blur":
        p.setdefault("sigma", m.blur.sigma_fraction)
    elif family == "pixelate":
        p.setdefault("blocks", m.pixelate.blocks)
    elif family == "dp-pix":
        for k, v in DP_PIX_DEFAULT.items():
            p.setdefault(k, v)
    elif family == "dp-image":
        p.setdefault("mechanism", m.dp_image.mechanism)
        if p["mechanism"] == "none":
            p.pop("epsilon", None)
        else:
            p.setdefault("epsilon", m.dp_image.epsilon)
    return p


def setting_config(setting: Setting, config_path: Path | None, base_overrides: dict[str, Any]) -> Config:
    return load_config(config_path, {**base_overrides, **setting.overrides()})


def build_setting_mechanism(setting: Setting, config: Config, seed: int | None = None):  # type: ignore[no-untyped-def]
    """The ``Mechanism`` for a setting (``config`` from ``setting_config``)."""
    from ..builder import build_mechanism
    from .baselines import DpPix, Identity

    if setting.family == "identity":
        return Identity()
    if setting.family == "dp-pix":
        p = setting.params
        return DpPix(p["b"], p["m"], p["epsilon"], feather=config.mechanism.feather, seed=seed)
    return build_mechanism(config)
