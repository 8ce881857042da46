"""Face-box SSIM at matched protection: each blur/pixelate row against the best dp-image row that
protects at least as well (the comparison the results' verdict rests on)."""

from __future__ import annotations

import math
from typing import Any

from .formatting import eps_text, num, pct

MATCH_TOLERANCE = 0.01  # 1 protection point (rates are fractions): ~2 standard errors at 1,680 probes near 99%


def _min_protection(row: dict[str, Any], advs: list[str]) -> float:
    """A row's protection against its strongest informed adversary (the lowest rate)."""
    vals = [row.get(f"{a}.informed.protection") for a in advs]
    vals = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
    return min(vals) if vals else float("nan")


def matched_protection(result: dict[str, Any], adversary: str | None = None) -> list[dict[str, Any]]:
    """Face-box SSIM of each blur/pixelate row vs the best dp-image row at the same protection.

    Protection = the informed ``adversary``'s rate, or with ``adversary=None`` the lowest informed
    rate over all adversaries (the strongest attack). A dp-image row (finite epsilon) matches a
    baseline when its protection is at least the baseline's minus ``MATCH_TOLERANCE``; of the
    matching rows the one with the highest face-box SSIM is taken.
    """
    advs = [a["name"] for a in result["summary"]["adversaries"]] if adversary is None else [adversary]
    dp = [
        r for r in result["rows"]
        if r["family"] == "dp-image" and r["epsilon"] is not None and math.isfinite(float(r["epsilon"]))
    ]
    out = []
    for b in result["rows"]:
        if b["family"] not in ("blur", "pixelate"):
            continue
        pb = _min_protection(b, advs)
        matches = [r for r in dp if _min_protection(r, advs) >= pb - MATCH_TOLERANCE]
        best = max(matches, key=lambda r: r["ssim_face"], default=None)
        out.append({
            "adversary": adversary or "weakest of " + ", ".join(advs),
            "baseline": b["setting"],
            "baseline_protection": pb,
            "baseline_ssim_face": b["ssim_face"],
            "dp_image": None if best is None else best["setting"],
            "dp_image_epsilon": None if best is None else best["epsilon"],
            "dp_image_protection": None if best is None else _min_protection(best, advs),
            "dp_image_ssim_face": None if best is None else best["ssim_face"],
            "dp_image_higher": None if best is None else bool(best["ssim_face"] > b["ssim_face"]),
            "best_dp_image_protection": max((_min_protection(r, advs) for r in dp), default=None),
        })
    return out


def matched_protection_all(result: dict[str, Any]) -> list[dict[str, Any]]:
    """``matched_protection`` for the weakest-of-all protection, then for each adversary alone."""
    names = [a["name"] for a in result["summary"]["adversaries"]]
    out = matched_protection(result)
    if len(names) > 1:
        for a in names:
            out += matched_protection(result, a)
    return out


def matched_protection_text(result: dict[str, Any]) -> list[str]:
    lines = []
    for m in matched_protection_all(result):
        head = (
            f"{m['adversary']}: {m['baseline']} protects {pct(m['baseline_protection'])}%, "
            f"face-box SSIM {num(m['baseline_ssim_face'])}; "
        )
        if m["dp_image"] is None:
            best = m["best_dp_image_protection"]
            lines.append(head + "no dp-image setting reaches that protection"
                         + (f" (best {pct(best)}%)" if best is not None else "") + ": NOT met")
        else:
            verdict = "higher: met" if m["dp_image_higher"] else "not higher: NOT met"
            lines.append(
                head + f"dp-image at epsilon {eps_text(m['dp_image_epsilon'])} ({pct(m['dp_image_protection'])}%) "
                f"has {num(m['dp_image_ssim_face'])} ({verdict})"
            )
    return lines
