"""``streamdp train --config configs/train.yaml``: prepare data, fit, export ONNX, draw figures.

Stages (``--stage``, default ``all``): ``prepare`` (detect + align crops into the cache),
``fit`` (train; resumes from the checkpoint), ``export`` (ONNX + metadata, verified with
onnxruntime), ``figures`` (training curves and the sample grid in docs/img).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

STAGES = ("prepare", "fit", "export", "figures")


def load_train_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    cfg = yaml.safe_load(p.read_text(encoding="utf-8"))
    for section in ("data", "model", "train", "loss", "export", "samples"):
        if not isinstance(cfg.get(section), dict):
            raise ConfigError(f"invalid config {p}: missing section {section!r}")
    return cfg


def _paths(cfg: dict[str, Any]) -> dict[str, Path]:
    d = cfg["data"]
    S = int(d["crop_size"])
    cache = Path(d["cache_dir"])
    lim = d.get("limit")
    suffix = f"_n{lim}" if lim else ""
    return {
        "root": Path(d["root"]),
        "train_npz": cache / f"train_S{S}{suffix}.npz",
        "eval_npz": cache / f"eval_S{S}.npz",
        "out_dir": Path(cfg["train"]["out_dir"]),
        "model_dir": Path(cfg["export"]["out_dir"]),
    }


def _mask(cfg: dict[str, Any]):
    from ..align import face_mask

    return face_mask(int(cfg["data"]["crop_size"]), float(cfg["data"]["mask_feather"]))


def run(cfg: dict[str, Any], stages: list[str], max_minutes: float | None = None) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError("streamdp train needs torch: pip install 'streamdp[train]' (torch==2.13.0)") from None
    from . import dataset

    P = _paths(cfg)
    d = cfg["data"]
    S = int(d["crop_size"])
    if max_minutes is not None:
        cfg["train"]["max_minutes"] = max_minutes
    if "prepare" in stages or "fit" in stages:
        dataset.prepare(P["root"], "train", S, P["train_npz"], int(d["workers"]), d.get("limit"))
        dataset.prepare(P["root"], "eval", S, P["eval_npz"], int(d["workers"]), limit=400)
    if "fit" in stages:
        from .train import fit

        fit(cfg, dataset.load(P["train_npz"]), _mask(cfg), P["out_dir"])
    if "export" in stages:
        from .export import export_from_checkpoint

        import numpy as np

        train = dataset.load(P["train_npz"])
        calib = train["crops"][np.random.default_rng(0).choice(len(train["crops"]), 1024, replace=False)]
        del train
        export_from_checkpoint(cfg, P["out_dir"] / "ckpt.pt", _mask(cfg), P["model_dir"], calib_crops=calib)
    if "figures" in stages:
        from .figures import sample_grid, training_curves

        training_curves(P["out_dir"] / "train_log.jsonl", Path(cfg["samples"]["curves"]))
        sample_grid(cfg, P["model_dir"], dataset.load(P["eval_npz"]), Path(cfg["samples"]["out"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="streamdp train", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train.yaml")
    ap.add_argument("--stage", choices=("all",) + STAGES, action="append")
    ap.add_argument("--max-minutes", type=float, default=None, help="override train.max_minutes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    cfg = load_train_config(args.config)
    stages = list(STAGES) if not args.stage or "all" in args.stage else args.stage
    run(cfg, stages, args.max_minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
