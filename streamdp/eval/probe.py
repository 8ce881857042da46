"""The per-photo tasks: a gallery original's reference data, and every setting on one probe photo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .measure import default_box, detect_hog, detect_pipeline, embed, load_rgb, locate, pad_image, pad_px
from .options import EvalOptions
from .worker import WORKER, take_new


def gallery_task(item: tuple[int, str]) -> dict[str, Any]:
    """Reference data of one original photo (keyed by its file hash)."""
    idx, path = item
    opts: EvalOptions = WORKER["opts"]
    t0 = time.perf_counter()
    c0 = time.process_time()
    img = load_rgb(Path(path))
    pad = pad_px(img, opts.pad)
    boxes, kps, scores = detect_pipeline(pad_image(img, pad), pad, use_cache=True)
    hog_boxes, _ = detect_hog(img, use_cache=True)
    out: dict[str, Any] = {"index": idx, "found_pipeline": bool(len(boxes)), "found_hog": bool(len(hog_boxes))}
    if len(boxes):
        from .adversaries import central

        k = central(boxes, img.shape)  # the photo's subject, not a face in the background
        out["box"], out["kps"] = boxes[k], kps[k]
    else:
        out["box"], out["kps"] = default_box(img.shape), np.full((6, 2), np.nan, np.float32)
    for adv in WORKER["advs"]:
        g = locate(adv, img, use_cache=True, hog=(hog_boxes, np.zeros(len(hog_boxes))) if adv.name == "dlib" else None)
        found = g is not None
        if g is None:
            g = adv.from_box(img, out["box"])
        out[f"{adv.name}.found"] = found
        out[f"{adv.name}.geom"] = np.asarray(g, np.float32)
        out[f"{adv.name}.desc"] = embed(adv, img, g, use_cache=True)
    out["new"] = take_new()
    out["seconds"] = time.perf_counter() - t0
    out["cpu_s"] = time.process_time() - c0
    return out


def probe_task(item: tuple[int, str, int, dict[str, Any]]) -> dict[str, Any]:
    """Every setting on one probe photo."""
    from ..types import Frame, FrameJob

    idx, path, stream_id, ref = item
    opts: EvalOptions = WORKER["opts"]
    stage = WORKER["stage"]
    t0 = time.perf_counter()
    img = load_rgb(Path(path))
    pad = pad_px(img, opts.pad)
    canvas = pad_image(img, pad)
    stage.new_scene(fps=1.0)  # a still photo: a fresh track
    job = stage.process(Frame(0, canvas.copy()))
    face_box = np.asarray(ref["box"], np.float32)
    ref_kps = np.asarray(ref["kps"], np.float32)
    rec: dict[str, Any] = {"index": idx, "pipeline_faces": len(job.faces), "settings": []}
    for si, (setting, priv) in enumerate(zip(WORKER["settings"], WORKER["privatizers"])):
        ts = time.perf_counter()
        cs = time.process_time()
        frame = Frame(0, canvas.copy())
        out_job = FrameJob(frame, job.faces, stream_id)
        priv.apply([out_job])
        t_mech = time.perf_counter() - ts
        out_canvas = out_job.frame.image
        out = np.ascontiguousarray(out_canvas[pad : pad + img.shape[0], pad : pad + img.shape[1]])
        cache_ok = not setting.random
        r: dict[str, Any] = {"mech_s": t_mech, "fail_closed": priv.failures}
        boxes, kps, _ = detect_pipeline(out_canvas, pad, cache_ok)
        inside = M.center_inside(boxes, face_box) if len(boxes) else np.zeros(0, bool)
        r["mp_found"] = bool(inside.any())
        r["kp_disp"] = M.keypoint_displacement(kps[np.argmax(inside)], ref_kps) if inside.any() else float("nan")
        hog_boxes, hog_scores = detect_hog(out, cache_ok)
        r["hog_found"] = bool(M.center_inside(hog_boxes, face_box).any()) if len(hog_boxes) else False
        smap = M.ssim_map(out, img)
        r["ssim"] = M.ssim(out, img, smap=smap)
        r["ssim_face"] = M.ssim(out, img, box=face_box, smap=smap)
        r["detail_face"] = M.detail_ratio(out, img, face_box)
        for adv in WORKER["advs"]:
            r[f"{adv.name}.informed"] = embed(adv, out, ref[f"{adv.name}.geom"], cache_ok)
            g = locate(adv, out, cache_ok, hog=(hog_boxes, hog_scores) if adv.name == "dlib" else None)
            r[f"{adv.name}.naive"] = (
                embed(adv, out, g, cache_ok) if g is not None else np.full(adv.dim, np.nan, np.float32)
            )
        r["seconds"] = time.perf_counter() - ts
        r["cpu_s"] = time.process_time() - cs
        if idx in ref.get("sample_indices", ()):
            r["image"] = out
        rec["settings"].append(r)
    if idx in ref.get("sample_indices", ()):
        rec["original"] = img
    rec["new"] = take_new()
    rec["seconds"] = time.perf_counter() - t0
    return rec
