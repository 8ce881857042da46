"""The raw records of a run -> one row per setting (and per video mode), plus the run's summary."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import metrics as M
from .options import EvalRun

EQUAL_FAR = 0.01  # false-accept rate on originals at which the recognisers are also compared


def aggregate(run: EvalRun) -> dict[str, Any]:
    ds = run.dataset
    gal_idx = np.array(ds.gallery)
    gal_pos = {int(i): p for p, i in enumerate(gal_idx)}
    gal_ids = np.array([ds.images[i].identity for i in gal_idx])
    probe_idx = np.array([r["index"] for r in run.probes])
    probe_ids = np.array([ds.images[i].identity for i in probe_idx])
    exclude = np.array([gal_pos.get(int(i), -1) for i in probe_idx])
    G = {a["name"]: np.stack([run.gallery[int(i)][f"{a['name']}.desc"] for i in gal_idx]) for a in run.adversaries}
    # The recognisers' false-accept rate on pairs of originals of different people at their
    # threshold (the floor of any "someone else's face" output), and the threshold at which they
    # would falsely accept exactly EQUAL_FAR of those pairs: protection there compares the two
    # recognisers at the same operating point.
    floors: dict[str, float] = {}
    far_thresholds: dict[str, float] = {}
    diff = gal_ids[:, None] != gal_ids[None, :]
    for a in run.adversaries:
        impostor = M.pairwise_l2(G[a["name"]], G[a["name"]])[diff]
        floors[a["name"]] = float((impostor <= a["threshold"]).mean()) if len(impostor) else float("nan")
        far_thresholds[a["name"]] = M.threshold_at_far(impostor, EQUAL_FAR)
    rows = []
    # per probe: the adversary's distance between output and original (for later analysis)
    per_probe: dict[str, Any] = {
        "probe": [str(ds.images[int(i)].path.name) for i in probe_idx],
        "identity": [str(x) for x in probe_ids],
        "distance": {},
    }
    for si, s in enumerate(run.settings):
        recs = [r["settings"][si] for r in run.probes]
        per_probe["distance"][s.key] = {}
        row: dict[str, Any] = {
            "setting": s.label,
            "key": s.key,
            "family": s.family,
            "params": s.params,
            "epsilon": s.epsilon,
            "n": len(recs),
        }
        for a in run.adversaries:
            name, thr = a["name"], a["threshold"]
            ref = G[name][exclude]
            for mode in ("informed", "naive"):
                Q = np.stack([r[f"{name}.{mode}"] for r in recs])
                d_same = np.linalg.norm(Q.astype(np.float64) - ref, axis=1)  # NaN when not found
                per_probe["distance"][s.key][f"{name}.{mode}"] = [round(float(x), 4) for x in d_same]
                D = M.pairwise_l2(Q, G[name])
                row[f"{name}.{mode}.protection"] = M.protection_rate(d_same, thr)
                row[f"{name}.{mode}.rank1"] = float(M.rank1(D, probe_ids, gal_ids, exclude).mean())
                counts = M.verification_counts(D, thr, probe_ids, gal_ids, exclude)
                row[f"{name}.{mode}.verification"] = M.balanced_accuracy(counts)
                row[f"{name}.{mode}.genuine_accept"] = counts[0] / max(counts[1], 1)
                row[f"{name}.{mode}.impostor_accept"] = 1.0 - counts[2] / max(counts[3], 1)
                row[f"{name}.{mode}.distance_median"] = float(np.nanmedian(d_same)) if np.isfinite(d_same).any() else float("nan")
                if mode == "naive":
                    row[f"{name}.naive.found"] = float(np.isfinite(d_same).mean())
                else:
                    row[f"{name}.informed.protection_equal_far"] = M.protection_rate(d_same, far_thresholds[name])
                    # realism as the recogniser sees it: outputs vs all original gallery photos
                    row[f"{name}.fd"] = M.frechet_distance(Q, G[name])
        row["mediapipe_detect"] = float(np.mean([r["mp_found"] for r in recs]))
        row["hog_detect"] = float(np.mean([r["hog_found"] for r in recs]))
        row["ssim"] = float(np.nanmean([r["ssim"] for r in recs]))
        row["ssim_face"] = float(np.nanmean([r["ssim_face"] for r in recs]))
        row["detail_face"] = float(np.nanmedian([r.get("detail_face", np.nan) for r in recs]))
        kp = np.array([r["kp_disp"] for r in recs], np.float64)
        row["kp_displacement_median"] = float(np.nanmedian(kp)) if np.isfinite(kp).any() else float("nan")
        row["mech_ms"] = 1000 * float(np.mean([r["mech_s"] for r in recs]))
        row["wall_ms"] = 1000 * float(np.mean([r["seconds"] for r in recs]))
        row["cpu_ms"] = 1000 * float(np.mean([r["cpu_s"] for r in recs]))
        row["fail_closed_batches"] = int(max((r["fail_closed"] for r in recs), default=0))
        rows.append(row)

    video_rows = []
    by: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for v in run.video:
        by.setdefault((v["setting"], v["mode"]), []).append(v)
    for (si, mode), vs in sorted(by.items()):
        s = run.settings[si]
        vr: dict[str, Any] = {
            "setting": s.label,
            "key": s.key,
            "epsilon": s.epsilon,
            "mode": mode,
            "tracks": len(vs),
            "frames": run.options.video_frames,
            "flicker": float(np.nanmean([v["flicker"] for v in vs])),
        }
        if "epsilon_spent" in vs[0]:
            # all tracks of a clip are one person: the clip's releases compose
            vr["epsilon_per_track"] = float(np.max([v["epsilon_spent"] for v in vs]))  # worst clip
            vr["epsilon_per_clip_mean"] = float(np.mean([v["epsilon_spent"] for v in vs]))
            vr["releases_per_track"] = float(np.mean([v["releases"] for v in vs]))
        for a in run.adversaries:
            name, thr = a["name"], a["threshold"]
            if f"{name}.frames" not in vs[0]:
                continue
            vidx = np.array([v["index"] for v in vs])
            vex = np.array([gal_pos[int(i)] for i in vidx])
            vids = np.array([ds.images[i].identity for i in vidx])
            ref = G[name][vex]
            frames = np.stack([v[f"{name}.frames"] for v in vs])  # (n, T, dim)
            single = np.linalg.norm(frames.astype(np.float64) - ref[:, None, :], axis=2)
            from .adversaries import adversary_class

            avg_fn = adversary_class(name).average
            avg = np.stack([avg_fn(f) for f in frames])
            d_avg = np.linalg.norm(avg.astype(np.float64) - ref, axis=1)
            vr[f"{name}.frame.protection"] = float(M.protected(single, thr).mean())
            vr[f"{name}.averaged.protection"] = M.protection_rate(d_avg, thr)
            vr[f"{name}.averaged.rank1"] = float(M.rank1(M.pairwise_l2(avg, G[name]), vids, gal_ids, vex).mean())
            vr[f"{name}.frame.distance_median"] = float(np.median(single))
            vr[f"{name}.averaged.distance_median"] = float(np.median(d_avg))
        video_rows.append(vr)

    gal = run.gallery.values()
    t = run.timings
    n_probe_settings = max(1, len(run.probes) * len(run.settings))
    summary = {
        "dataset": ds.describe(),
        "dp_image_model": run.model,
        "video_error": run.video_error,
        "adversaries": run.adversaries,
        "pipeline_found_original": float(np.mean([g["found_pipeline"] for g in gal])),
        "pipeline_found_probes": float(np.mean([r["pipeline_faces"] > 0 for r in run.probes])),
        "hog_found_original": float(np.mean([g["found_hog"] for g in gal])),
        # share of pairs of originals of *different* people the adversary calls the same person:
        # the best protection any mechanism can show is about 1 minus this
        "impostor_accept_originals": floors,
        "equal_far": EQUAL_FAR,
        "equal_far_thresholds": far_thresholds,
        **{f"{a['name']}_found_original": float(np.mean([g[f"{a['name']}.found"] for g in gal])) for a in run.adversaries},
        "timings": {
            **t,
            "per_gallery_image_s": t.get("gallery_s", 0) / max(1, t.get("gallery_images", 1)),
            "per_probe_setting_s": t.get("probes_s", 0) / n_probe_settings,
            "per_probe_setting_cpu_s": float(np.mean([s["cpu_s"] for r in run.probes for s in r["settings"]])) if run.probes else float("nan"),
            "per_gallery_image_cpu_s": float(np.mean([g["cpu_s"] for g in gal])) if run.gallery else float("nan"),
            "per_video_clip_cpu_s": float(np.mean([v["cpu_s"] for v in run.video])) if run.video else float("nan"),
        },
    }
    return {"summary": summary, "rows": rows, "video": video_rows, "per_probe": per_probe}
