"""The video attack's task: one short clip of a probe photo through one setting and noise mode."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .measure import load_rgb, pad_image, pad_px
from .options import EvalOptions
from .settings import build_setting_mechanism
from .worker import WORKER


def video_privatizer(si: int, mode: str) -> Any:
    from ..config import load_config
    from ..builder import build_privatizer

    key = (si, mode)
    if key not in WORKER["video_mechs"]:
        opts: EvalOptions = WORKER["opts"]
        setting = WORKER["settings"][si]
        over = {**opts.base_overrides, **setting.overrides()}
        if mode == "fresh":
            over["mechanism.dp_image.release_interval"] = 1e-6  # a fresh release every frame
        cfg = load_config(opts.config_path, over)
        WORKER["video_mechs"][key] = (cfg, build_privatizer(cfg, build_setting_mechanism(setting, cfg, opts.seed)))
    return WORKER["video_mechs"][key]


def video_task(item: tuple[int, str, int, int, str, dict[str, Any], bool]) -> dict[str, Any]:
    """One clip: the photo sliding left 1 px per frame at 25 fps, through one setting and mode."""
    from fractions import Fraction

    from ..faces import FaceStage
    from ..types import Frame

    idx, path, stream_id, si, mode, ref, with_desc = item
    opts: EvalOptions = WORKER["opts"]
    cfg, priv = video_privatizer(si, mode)
    T = opts.video_frames
    img = load_rgb(Path(path))
    h, w = img.shape[:2]
    pad = pad_px(img, opts.pad)
    big = pad_image(img, pad + T)
    stage: FaceStage = WORKER["stage"]
    stage.new_scene(fps=25.0)  # a new clip: a fresh track (settings change only the mechanism)
    face_box = np.asarray(ref["box"], np.float32)
    outs, descs = [], {adv.name: [] for adv in WORKER["advs"]}
    t0 = time.perf_counter()
    c0 = time.process_time()
    for t in range(T):
        x0 = T + t  # the window slides right, so the face moves left by 1 px per frame
        canvas = np.ascontiguousarray(big[T : T + h + 2 * pad, x0 : x0 + w + 2 * pad])
        frame = Frame(t, canvas, pts=t, time_base=Fraction(1, 25))
        job = stage.process(frame, stream_id)
        job.stream_id = stream_id
        priv.apply([job])
        out = job.frame.image
        shift = t  # photo pixel (u, v) is at canvas (u + pad - t, v + pad)
        photo = np.ascontiguousarray(out[pad : pad + h, pad - shift : pad - shift + w])
        outs.append(photo)
        if with_desc:
            for adv in WORKER["advs"]:
                g = np.asarray(ref[f"{adv.name}.geom"], np.float32).copy()
                g[0::2] -= shift  # x coordinates (box and landmarks) follow the face
                crop_full = np.ascontiguousarray(out[pad : pad + h, :])
                gx = g.copy()
                gx[0::2] += pad
                descs[adv.name].append(adv.embed(crop_full, gx))
    rec: dict[str, Any] = {
        "index": idx,
        "setting": si,
        "mode": mode,
        "flicker": M.flicker(outs, face_box),
        "seconds": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }
    mech = priv.mechanism
    ledger = getattr(mech, "ledger", None)
    if ledger is not None:
        releases = sum(acc.releases for k, acc in ledger.tracks.items() if isinstance(k, tuple) and k[0] == stream_id)
        rec["releases"] = releases
        rec["epsilon_spent"] = ledger.spent(releases)[0]
    for adv in WORKER["advs"]:
        if with_desc:
            rec[f"{adv.name}.frames"] = np.stack(descs[adv.name])
    return rec
