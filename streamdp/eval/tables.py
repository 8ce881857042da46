"""The markdown tables of results.md: the main table, equal false-accept rate, the video attack, targets."""

from __future__ import annotations

import math
from typing import Any

from .formatting import eps_text, md_table, num, pct

TARGETS = {
    "protection": 0.95,
    "rank1": 0.02,
    "mediapipe_detect": 0.90,
    "hog_detect": 0.80,
}


def main_table(result: dict[str, Any]) -> str:
    advs = [a["name"] for a in result["summary"]["adversaries"]]
    head = ["mechanism", "ε"]
    for a in advs:
        head += [f"protection {a} (informed)", f"rank-1 {a} (informed)"]
    for a in advs:
        head += [f"protection {a} (naive)"]
    if advs:
        head += [f"verification {advs[0]} (informed)"]
    head += ["MediaPipe finds a face", "HOG finds a face", "SSIM image", "SSIM face box", "detail kept (face box)", "keypoint shift (eye dist.)"]
    fd_advs = [a for a in advs if any(f"{a}.fd" in r for r in result["rows"])]
    head += [f"FD {a} features" for a in fd_advs]
    rows = []
    for r in result["rows"]:
        cells = [r["setting"], eps_text(r["epsilon"])]
        for a in advs:
            cells += [pct(r[f"{a}.informed.protection"]), pct(r[f"{a}.informed.rank1"])]
        for a in advs:
            cells += [pct(r[f"{a}.naive.protection"])]
        if advs:
            cells += [pct(r[f"{advs[0]}.informed.verification"])]
        cells += [
            pct(r["mediapipe_detect"]),
            pct(r["hog_detect"]),
            num(r["ssim"]),
            num(r["ssim_face"]),
            num(r.get("detail_face"), 2),
            num(r["kp_displacement_median"], 2),
        ]
        cells += [num(r.get(f"{a}.fd"), 3) for a in fd_advs]
        rows.append(cells)
    return md_table(head, rows)


def equal_far_table(result: dict[str, Any]) -> str:
    """Informed protection with every recogniser at the threshold where it falsely accepts the
    same share (``summary.equal_far``) of pairs of different people's originals."""
    s = result["summary"]
    thr = s.get("equal_far_thresholds") or {}
    advs = [a["name"] for a in s["adversaries"] if a["name"] in thr]
    if not advs or not any(f"{advs[0]}.informed.protection_equal_far" in r for r in result["rows"]):
        return ""
    head = ["mechanism", "ε"] + [f"protection {a} (informed) at distance <= {num(thr[a], 3)}" for a in advs]
    rows = [
        [r["setting"], eps_text(r["epsilon"])] + [pct(r.get(f"{a}.informed.protection_equal_far")) for a in advs]
        for r in result["rows"]
    ]
    return md_table(head, rows)


def video_table(result: dict[str, Any]) -> str:
    rows = result["video"]
    if not rows:
        return ""
    advs = [a["name"] for a in result["summary"]["adversaries"] if any(f"{a['name']}.frame.protection" in r for r in rows)]
    head = ["mechanism", "ε per release", "noise", "ε spent per person: mean (worst clip)"]
    for a in advs:
        head += [f"{a}: protection per frame", f"{a}: protection, averaged", f"{a}: rank-1, averaged"]
    head += ["flicker (0-255)"]
    table = []
    for r in rows:
        noise = {"reuse": "once per track (reused)", "fresh": "fresh every frame", "static": "–"}[r["mode"]]
        spent = eps_text(r.get("epsilon_per_track"))
        if r.get("epsilon_per_clip_mean") is not None and math.isfinite(r["epsilon_per_clip_mean"]):
            spent = f"{r['epsilon_per_clip_mean']:.4g} ({spent})"
        cells = [r["setting"], eps_text(r["epsilon"]), noise, spent]
        for a in advs:
            cells += [
                pct(r.get(f"{a}.frame.protection")),
                pct(r.get(f"{a}.averaged.protection")),
                pct(r.get(f"{a}.averaged.rank1")),
            ]
        cells += [num(r["flicker"], 1)]
        table.append(cells)
    return md_table(head, table)


def targets_text(result: dict[str, Any], default_epsilon: float | None) -> list[str]:
    """Plain statements of where the default-epsilon dp-image row stands against the targets."""
    rows = [r for r in result["rows"] if r["family"] == "dp-image" and r["epsilon"] == default_epsilon]
    if not rows:
        return ["(no dp-image row at the default epsilon in this run)"]
    r = rows[0]
    advs = [a["name"] for a in result["summary"]["adversaries"]]
    out = []
    for a in advs:
        p, k = r[f"{a}.informed.protection"], r[f"{a}.informed.rank1"]
        out.append(
            f"{a} (informed): protection {pct(p)}% (target >= 95%: {'met' if p >= TARGETS['protection'] else 'NOT met'}), "
            f"rank-1 {pct(k)}% (target <= 2%: {'met' if k <= TARGETS['rank1'] else 'NOT met'})"
        )
    mp_, hog = r["mediapipe_detect"], r["hog_detect"]
    out.append(f"MediaPipe finds a face in {pct(mp_)}% of outputs (target >= 90%: {'met' if mp_ >= TARGETS['mediapipe_detect'] else 'NOT met'})")
    out.append(f"dlib HOG finds a face in {pct(hog)}% of outputs (target >= 80%: {'met' if hog >= TARGETS['hog_detect'] else 'NOT met'})")
    return out
