"""A private copy of the dp-image model the settings use, so one run never mixes two models."""

from __future__ import annotations

from pathlib import Path

from .options import EvalOptions
from .settings import Setting


def snapshot_model(opts: EvalOptions, settings: list[Setting]) -> dict[str, str] | None:
    """Copy the dp-image model the settings use into the cache (or a temp dir) and point every
    dp-image setting without an explicit model at the copy: a model replaced on disk during a
    long run must not mix two models in one table. Returns the copy's metadata."""
    import shutil
    import tempfile

    from ..config import load_config
    from ..mechanisms.dp_image_models import resolve_model_dir
    from ..privacy import read_model_metadata

    if not any(s.family == "dp-image" and not s.params.get("model") for s in settings):
        return None
    cfg = load_config(opts.config_path, opts.base_overrides)
    src = resolve_model_dir(cfg.mechanism.dp_image.model)
    from ..mechanisms.dp_image_models import check_model_dir

    # the source is checked (checksums, or the explicit allow_custom_model) before it is copied;
    # the snapshot is then that same, already checked folder
    check_model_dir(src, cfg.mechanism.dp_image.allow_custom_model, tuple(f.name for f in src.iterdir() if f.suffix in (".onnx", ".npz")))
    base = Path(opts.cache_dir) / "models" if opts.cache_dir is not None else Path(tempfile.mkdtemp(prefix="streamdp-eval-"))
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="incoming-", dir=base))
    # every file of the folder: encoder.onnx and decoder.onnx (autoencoder) or encoder.onnx and
    # latent.npz (generator design)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, tmp / f.name)
    meta = read_model_metadata(tmp / "encoder.onnx")  # validates the copy (a half-written file fails here)
    if (tmp / "decoder.onnx").is_file():
        read_model_metadata(tmp / "decoder.onnx")
    dst = base / f"dpimage-{meta['streamdp.sha256'][:16]}"
    if dst.is_dir():
        shutil.rmtree(tmp)
    else:
        tmp.rename(dst)
    opts.base_overrides = {**opts.base_overrides, "mechanism.dp_image.model": str(dst),
                           "mechanism.dp_image.allow_custom_model": True}
    return {"source": str(src), "snapshot": str(dst), **meta}
