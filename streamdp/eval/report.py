"""Write the evaluation's outputs: results.md (paper-style table), results.csv, results.json,
privacy_utility.png (protection vs face-box SSIM) and samples.png (originals and outputs).

The tables are made in ``tables.py`` and ``matched.py``, the figures in ``plots.py``; this module
writes the files, reads a results.json back, and re-renders from one (``python -m streamdp.eval.report``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .formatting import pct
from .matched import MATCH_TOLERANCE, matched_protection, matched_protection_all, matched_protection_text
from .plots import plot_privacy_utility, plot_samples, plot_video
from .tables import TARGETS, equal_far_table, main_table, targets_text, video_table

# re-exported: the names importers know from this module
__all__ = [
    "MATCH_TOLERANCE",
    "TARGETS",
    "equal_far_table",
    "load_result",
    "main",
    "main_table",
    "matched_protection",
    "matched_protection_all",
    "matched_protection_text",
    "plot_privacy_utility",
    "plot_samples",
    "plot_video",
    "targets_text",
    "video_table",
    "write_csv",
    "write_outputs",
]


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
        f"The pipeline's detector found the face in {pct(s['pipeline_found_probes'])}% of the probe photos "
        f"({pct(s['pipeline_found_original'])}% of all gallery originals); on the originals dlib HOG found "
        f"{pct(s['hog_found_original'])}%"
        + "".join(f", {a['name']}'s own detector {pct(s[a['name'] + '_found_original'])}%" for a in s["adversaries"])
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
