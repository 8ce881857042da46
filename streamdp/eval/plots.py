"""The evaluation's figures: privacy vs utility, the video attack, the sample grid (matplotlib, Agg)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from .formatting import eps_text


def plot_privacy_utility(result: dict[str, Any], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    advs = [a["name"] for a in result["summary"]["adversaries"]]
    # one panel per adversary (protection vs face-box SSIM), then: is a natural face still there?
    panels = [(a, "ssim_face") for a in advs] + ([(advs[0], "mediapipe_detect")] if advs else [])
    width = 5.0 * len(panels) + 2.8
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 5.0), squeeze=False)
    colors = {"identity": "0.4", "blur": "tab:blue", "pixelate": "tab:orange", "solid": "k", "dp-pix": "tab:purple", "dp-image": "tab:green"}
    markers = {"identity": "x", "blur": "o", "pixelate": "s", "solid": "D", "dp-pix": "^", "dp-image": "*"}
    for ax, (a, xkey) in zip(axes[0], panels):
        scale_x = 100.0 if xkey == "mediapipe_detect" else 1.0
        dp_noise = sorted(
            (r for r in result["rows"] if r["family"] == "dp-image" and r["epsilon"] is not None and math.isfinite(r["epsilon"])),
            key=lambda r: -r["epsilon"],
        )
        if dp_noise:
            ax.plot(
                [scale_x * r[xkey] for r in dp_noise], [100 * r[f"{a}.informed.protection"] for r in dp_noise],
                "-", color="tab:green", alpha=0.5, zorder=1,
            )
        for n, r in enumerate(result["rows"], 1):
            x, y = scale_x * r[xkey], 100 * r[f"{a}.informed.protection"]
            label = r["setting"] + (f", ε={eps_text(r['epsilon'])}" if r["epsilon"] is not None else "")
            ax.scatter([x], [y], c=colors.get(r["family"], "tab:red"), marker=markers.get(r["family"], "o"), s=70, zorder=3, label=f"{n}: {label}")
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4 + 7 * (n % 3), 3 + 5 * (n % 2)), fontsize=7)
            if xkey == "ssim_face":
                yn = 100 * r[f"{a}.naive.protection"]
                ax.scatter([x], [yn], facecolors="none", edgecolors=colors.get(r["family"], "tab:red"), marker="o", s=30, zorder=2, alpha=0.6)
        ax.axhline(95, color="r", ls=":", lw=1)
        ax.set_ylabel(f"protection against {a} (informed), %")
        ax.set_ylim(-3, 103)
        if xkey == "ssim_face":
            ax.set_xlabel("SSIM of the face box (utility →)")
            ax.set_title(f"{a}: filled = informed, hollow = naive", fontsize=10)
            ax.set_xlim(-0.05, 1.02)
        else:
            ax.axvline(90, color="r", ls=":", lw=1)
            ax.set_xlabel("MediaPipe finds a face in the output, % (natural face →)")
            ax.set_title("a face is still there (targets: dotted)", fontsize=10)
            ax.set_xlim(-3, 103)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 2.7 / width, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_video(result: dict[str, Any], path: Path) -> bool:
    """Video attack: protection per frame vs after averaging, noise reused per track vs fresh."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["video"] if r["mode"] in ("reuse", "fresh")]
    advs = [a["name"] for a in result["summary"]["adversaries"] if any(f"{a['name']}.averaged.protection" in r for r in rows)]
    if not rows or not advs:
        return False
    eps = sorted({r["epsilon"] for r in rows})
    fig, axes = plt.subplots(1, len(advs), figsize=(6 * len(advs), 4), squeeze=False)
    width = 0.2
    series = [
        ("reuse", "frame", "reused noise, one frame", "tab:green", None),
        ("reuse", "averaged", "reused noise, averaged over the track", "tab:green", "//"),
        ("fresh", "frame", "fresh noise, one frame", "tab:red", None),
        ("fresh", "averaged", "fresh noise, averaged over the track", "tab:red", "//"),
    ]
    for ax, a in zip(axes[0], advs):
        x = np.arange(len(eps))
        for k, (mode, kind, label, color, hatch) in enumerate(series):
            vals = []
            for e in eps:
                r = next((r for r in rows if r["epsilon"] == e and r["mode"] == mode), None)
                vals.append(100 * r.get(f"{a}.{kind}.protection", float("nan")) if r else float("nan"))
            ax.bar(x + (k - 1.5) * width, vals, width, label=label, color=color, alpha=0.55 if kind == "frame" else 0.9, hatch=hatch)
        ax.set_xticks(x, [f"ε={eps_text(e)}" for e in eps])
        ax.set_ylabel(f"protection against {a} (informed), %")
        ax.set_ylim(0, 105)
        ax.axhline(95, color="k", ls=":", lw=1)
        ax.set_title(f"video attack, {a}: averaging descriptors over a track")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_samples(samples: dict[str, Any], labels: list[str], path: Path) -> None:
    """Rows: probes; columns: original then each setting's output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not samples:
        return
    probes = sorted(samples)
    cols = 1 + len(labels)
    fig, axes = plt.subplots(len(probes), cols, figsize=(1.35 * cols, 1.5 * len(probes)), squeeze=False)
    for i, p in enumerate(probes):
        ims = [samples[p]["original"], *samples[p]["outputs"]]
        for j, im in enumerate(ims):
            ax = axes[i][j]
            ax.imshow(im)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                title = "original" if j == 0 else textwrap.fill(labels[j - 1], 22)
                ax.set_title(title, fontsize=5.5)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=80)
    plt.close(fig)
