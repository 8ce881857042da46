"""Write the evaluation's outputs: results.md (paper-style table), results.csv, results.json,
privacy_utility.png (protection vs face-box SSIM) and samples.png (originals and outputs)."""

from __future__ import annotations

import csv
import json
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {
    "protection": 0.95,
    "rank1": 0.02,
    "mediapipe_detect": 0.90,
    "hog_detect": 0.80,
}


def _pct(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{100 * x:.{digits}f}"


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def _eps(e: Any) -> str:
    if e is None:
        return "–"
    if isinstance(e, float) and math.isinf(e):
        return "∞"
    return f"{e:g}"


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else None)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _json_safe(x.tolist())
    if isinstance(x, Path):
        return str(x)
    return x


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    """A markdown table: header, separator, one line per row of cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


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
        cells = [r["setting"], _eps(r["epsilon"])]
        for a in advs:
            cells += [_pct(r[f"{a}.informed.protection"]), _pct(r[f"{a}.informed.rank1"])]
        for a in advs:
            cells += [_pct(r[f"{a}.naive.protection"])]
        if advs:
            cells += [_pct(r[f"{advs[0]}.informed.verification"])]
        cells += [
            _pct(r["mediapipe_detect"]),
            _pct(r["hog_detect"]),
            _num(r["ssim"]),
            _num(r["ssim_face"]),
            _num(r.get("detail_face"), 2),
            _num(r["kp_displacement_median"], 2),
        ]
        cells += [_num(r.get(f"{a}.fd"), 3) for a in fd_advs]
        rows.append(cells)
    return _md_table(head, rows)


def equal_far_table(result: dict[str, Any]) -> str:
    """Informed protection with every recogniser at the threshold where it falsely accepts the
    same share (``summary.equal_far``) of pairs of different people's originals."""
    s = result["summary"]
    thr = s.get("equal_far_thresholds") or {}
    advs = [a["name"] for a in s["adversaries"] if a["name"] in thr]
    if not advs or not any(f"{advs[0]}.informed.protection_equal_far" in r for r in result["rows"]):
        return ""
    head = ["mechanism", "ε"] + [f"protection {a} (informed) at distance <= {_num(thr[a], 3)}" for a in advs]
    rows = [
        [r["setting"], _eps(r["epsilon"])] + [_pct(r.get(f"{a}.informed.protection_equal_far")) for a in advs]
        for r in result["rows"]
    ]
    return _md_table(head, rows)


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
        spent = _eps(r.get("epsilon_per_track"))
        if r.get("epsilon_per_clip_mean") is not None and math.isfinite(r["epsilon_per_clip_mean"]):
            spent = f"{r['epsilon_per_clip_mean']:.4g} ({spent})"
        cells = [r["setting"], _eps(r["epsilon"]), noise, spent]
        for a in advs:
            cells += [
                _pct(r.get(f"{a}.frame.protection")),
                _pct(r.get(f"{a}.averaged.protection")),
                _pct(r.get(f"{a}.averaged.rank1")),
            ]
        cells += [_num(r["flicker"], 1)]
        table.append(cells)
    return _md_table(head, table)


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
            f"{a} (informed): protection {_pct(p)}% (target >= 95%: {'met' if p >= TARGETS['protection'] else 'NOT met'}), "
            f"rank-1 {_pct(k)}% (target <= 2%: {'met' if k <= TARGETS['rank1'] else 'NOT met'})"
        )
    mp_, hog = r["mediapipe_detect"], r["hog_detect"]
    out.append(f"MediaPipe finds a face in {_pct(mp_)}% of outputs (target >= 90%: {'met' if mp_ >= TARGETS['mediapipe_detect'] else 'NOT met'})")
    out.append(f"dlib HOG finds a face in {_pct(hog)}% of outputs (target >= 80%: {'met' if hog >= TARGETS['hog_detect'] else 'NOT met'})")
    return out


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
            f"{m['adversary']}: {m['baseline']} protects {_pct(m['baseline_protection'])}%, "
            f"face-box SSIM {_num(m['baseline_ssim_face'])}; "
        )
        if m["dp_image"] is None:
            best = m["best_dp_image_protection"]
            lines.append(head + "no dp-image setting reaches that protection"
                         + (f" (best {_pct(best)}%)" if best is not None else "") + ": NOT met")
        else:
            verdict = "higher: met" if m["dp_image_higher"] else "not higher: NOT met"
            lines.append(
                head + f"dp-image at epsilon {_eps(m['dp_image_epsilon'])} ({_pct(m['dp_image_protection'])}%) "
                f"has {_num(m['dp_image_ssim_face'])} ({verdict})"
            )
    return lines


def write_csv(result: dict[str, Any], path: Path) -> None:
    rows = result["rows"]
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()})
    if result["video"]:
        vkeys: list[str] = []
        for r in result["video"]:
            for k in r:
                if k not in vkeys:
                    vkeys.append(k)
        with open(path.with_name(path.stem + "_video.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=vkeys)
            w.writeheader()
            for r in result["video"]:
                w.writerow(r)


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
            label = r["setting"] + (f", ε={_eps(r['epsilon'])}" if r["epsilon"] is not None else "")
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
        ax.set_xticks(x, [f"ε={_eps(e)}" for e in eps])
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


def write_outputs(result: dict[str, Any], out_dir: Path, command: str, default_epsilon: float | None, samples: dict[str, Any], labels: list[str]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "results.json",
        "csv": out_dir / "results.csv",
        "md": out_dir / "results.md",
        "plot": out_dir / "privacy_utility.png",
        "samples": out_dir / "samples.png",
    }
    payload = {"command": command, **result, "matched_protection": matched_protection_all(result)}
    paths["json"].write_text(json.dumps(_json_safe(payload), indent=2), encoding="utf-8")
    write_csv(result, paths["csv"])
    s = result["summary"]
    ds = s["dataset"]
    t = s["timings"]
    model = s.get("dp_image_model")
    md = [
        "# streamdp eval results",
        "",
        f"Command: `{command}`",
        "",
        *(
            [
                f"dp-image model: version {model.get('streamdp.version')}, weights sha256 "
                f"{str(model.get('streamdp.sha256'))[:12]}..., {model.get('streamdp.training_steps', '?')} training steps, "
                f"exported {model.get('streamdp.exported', '?')}.",
                "",
            ]
            if model
            else []
        ),
        f"Dataset: `{ds['root']}`"
        + (f", split `{ds['split_key']}` of `{ds['split_file']}`" if ds.get("split_key") else "")
        + f"; {ds['identities']} identities, {ds['probes']} probe photos, gallery of {ds['gallery']} original photos.",
        "",
        "Adversaries: "
        + "; ".join(f"{a['name']} (same person at distance <= {a['threshold']})" for a in s["adversaries"])
        + ". Protection = share of outputs the adversary no longer matches to the same original photo; "
        "rank-1 = share of outputs whose nearest gallery photo (the probe's own photo left out) is the same person.",
        "",
        main_table(result),
        "",
    ]
    vt = video_table(result)
    if vt:
        md += ["Video attack (the adversary averages its descriptors over each track):", "", vt, ""]
    if s.get("video_error"):
        md += [f"The video attack failed and is missing: {s['video_error']}", ""]
    md += ["Where the default epsilon stands against the targets:", ""]
    md += [f"- {line}" for line in targets_text(result, default_epsilon)]
    ef = equal_far_table(result)
    if ef:
        far = result["summary"].get("equal_far", 0.01)
        md += ["", f"The same outputs with each recogniser at its threshold for a {100 * far:g}% false-accept rate on pairs "
               "of different people's originals (one operating point for both; the table above uses their own thresholds):", "", ef]
    matched = matched_protection_text(result)
    if matched:
        md += ["", f"Face-box SSIM at matched protection (dp-image within {100 * MATCH_TOLERANCE:g} point of the baseline or above):", ""]
        md += [f"- {line}" for line in matched]
    md += [
        "",
        f"The pipeline's detector found the face in {_pct(s['pipeline_found_probes'])}% of the probe photos "
        f"({_pct(s['pipeline_found_original'])}% of all gallery originals); on the originals dlib HOG found "
        f"{_pct(s['hog_found_original'])}%"
        + "".join(f", {a['name']}'s own detector {_pct(s[a['name'] + '_found_original'])}%" for a in s["adversaries"])
        + ".",
        "",
        f"Time: {t['total_s']:.0f} s with {t['workers']} worker(s); gallery {t.get('gallery_s', 0):.0f} s for "
        f"{t.get('gallery_images', 0)} photos, probes {t.get('probes_s', 0):.0f} s "
        f"({t['per_probe_setting_s']:.3f} s wall per probe and setting)"
        + (f", video {t['video_s']:.0f} s for {t['video_clips']} clips" if "video_s" in t else "")
        + ".",
        "",
    ]
    paths["md"].write_text("\n".join(md), encoding="utf-8")
    plot_privacy_utility(result, paths["plot"], title=f"{ds['probes']} probes, {ds['identities']} identities")
    paths["video_plot"] = out_dir / "video_attack.png"
    if not plot_video(result, paths["video_plot"]):
        paths.pop("video_plot")
    if samples:
        plot_samples(samples, labels, paths["samples"])
    else:
        paths.pop("samples")
    return paths


def load_result(path: Path) -> tuple[str, dict[str, Any]]:
    """(command, result) from a results.json written by ``write_outputs``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))

    def back(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: back(v) for k, v in x.items()}
        if isinstance(x, list):
            return [back(v) for v in x]
        if x == "inf":
            return math.inf
        if x is None:
            return None
        return x

    command = data.pop("command", "")
    data.pop("matched_protection", None)  # derived: recomputed on writing
    result = back(data)
    for r in result["rows"] + result["video"]:
        for k, v in list(r.items()):
            if v is None and k != "epsilon" and k != "epsilon_per_track":
                r[k] = float("nan")
    return command, result


def main(argv: list[str] | None = None) -> int:
    """Re-render results.md / .csv / privacy_utility.png from a results.json (no recomputation)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m streamdp.eval.report", description=main.__doc__)
    ap.add_argument("results_json", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--default-epsilon", type=float, default=None, help="default: the config's")
    args = ap.parse_args(argv)
    command, result = load_result(args.results_json)
    eps = args.default_epsilon
    if eps is None:
        from ..config import load_config

        eps = load_config(None).mechanism.dp_image.epsilon
    write_outputs(result, args.out, command, eps, {}, [])
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
