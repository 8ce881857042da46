"""``streamdp eval DATASET --mechanism M [--epsilon E ...] [--out DIR]``."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def add_eval_parser(sub: Any) -> None:
    """Register ``eval`` on the main parser's subparsers."""
    p = sub.add_parser(
        "eval",
        help="privacy-utility evaluation against face recognisers (needs the 'eval' extra)",
        description=(
            "Run the real pipeline on face photos of known identities and measure how well face "
            "recognisers still identify the outputs (privacy) and how much of the image survives "
            "(utility). DATASET: a folder of identity sub-folders of photos (e.g. "
            "../shared/data/faces/lfw; DATASET/../splits.json, when present, restricts it to "
            "lfw_eval_identities)."
        ),
    )
    p.add_argument("dataset", type=Path, help="folder of identity sub-folders of face photos")
    p.add_argument(
        "-m", "--mechanism", action="append", metavar="SPEC",
        help="NAME[:key=value,...], repeatable: identity, blur[:sigma=], pixelate[:blocks=], solid, "
        "dp-pix[:b=,m=,epsilon=], dp-image[:epsilon=,mechanism=]; 'default' = the default sweep "
        "(the default when omitted)",
    )
    p.add_argument("--epsilon", type=float, nargs="+", metavar="E", help="epsilon values for dp-image / dp-pix specs that name none")
    p.add_argument("-o", "--out", type=Path, default=Path("eval-out"), help="output folder (default ./eval-out)")
    p.add_argument("-c", "--config", type=Path, help="YAML config (detection, tracking, mechanism defaults)")
    p.add_argument("--splits", type=Path, help="splits JSON (default DATASET/../splits.json when it exists)")
    p.add_argument("--split", help="key of the splits file (default lfw_eval_identities)")
    p.add_argument("--limit", type=int, help="evaluate N identities (one probe each) for a quick run")
    p.add_argument("--probes-per-identity", type=int, default=1)
    p.add_argument("--gallery-per-identity", type=int, default=10, help="photos per identity in the gallery (default 10)")
    p.add_argument("--adversary", action="append", metavar="NAME", help="dlib, facenet or module:Class (repeatable; default both)")
    p.add_argument("--video-tracks", type=int, default=0, metavar="N", help="video attack on N probes' clips (default 0: off)")
    p.add_argument("--video-frames", type=int, default=12, metavar="T", help="frames per clip (default 12)")
    p.add_argument("--workers", type=int, help="worker processes (default: min(2, CPUs))")
    p.add_argument("--pad", type=float, default=0.25, help="replicated border around each photo, fraction of its size")
    p.add_argument("--cache-dir", type=Path, help="descriptor cache (default ~/.cache/streamdp/eval)")
    p.add_argument("--no-cache", action="store_true", help="compute everything, keep nothing")
    p.add_argument("--seed", type=int, help="fixed noise seed (tests only: no privacy)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    # streamdp.cli.main dispatches sub-commands other than run/train through ``handler``.
    p.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace, argv: list[str]) -> int:
    from ..config import load_config
    from .adversaries import DEFAULT_ADVERSARIES, eval_extra_missing
    from .cache import default_cache_dir
    from .dataset import load_dataset
    from .report import write_outputs
    from .runner import EvalOptions, aggregate, default_workers, run_eval
    from .settings import parse_settings

    adversaries = tuple(args.adversary or DEFAULT_ADVERSARIES)
    if any(a in ("dlib", "facenet") for a in adversaries):
        why = eval_extra_missing()
        if why:
            raise ConfigError(f"streamdp eval needs the 'eval' extra (pip install 'streamdp[eval]'): {why}")
    config = load_config(args.config)
    settings = parse_settings(args.mechanism or ["default"], args.epsilon, config)
    dataset = load_dataset(
        args.dataset,
        split_file=args.splits,
        split_key=args.split,
        limit=args.limit,
        probes_per_identity=args.probes_per_identity,
        gallery_per_identity=args.gallery_per_identity,
    )
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    opts = EvalOptions(
        config_path=args.config,
        base_overrides={"mechanism.dp_image.seed": args.seed} if args.seed is not None else {},
        adversaries=adversaries,
        workers=args.workers or default_workers(),
        pad=args.pad,
        cache_dir=cache_dir,
        video_tracks=args.video_tracks,
        video_frames=args.video_frames,
        seed=args.seed,
        progress=not args.quiet and sys.stderr.isatty(),
        progress_lines=not args.quiet and not sys.stderr.isatty(),
    )
    if not args.quiet:
        print(
            f"streamdp eval: {len(dataset.identities)} identities, {len(dataset.probes)} probes, gallery "
            f"{len(dataset.gallery)}; {len(settings)} settings; adversaries {', '.join(adversaries)}; "
            f"{opts.workers} worker(s)",
            file=sys.stderr,
        )
    t0 = time.perf_counter()
    run = run_eval(dataset, settings, opts)
    result = aggregate(run)
    samples: dict[Any, Any] = {}
    for rec in run.probes:
        if "original" in rec:
            samples[rec["index"]] = {
                "original": rec["original"],
                "outputs": [s.get("image") for s in rec["settings"]],
            }
    labels = [
        s.label.replace("dp-image", "dp-img") + (f" ε={s.epsilon:g}" if s.epsilon is not None else "") for s in settings
    ]
    command = "streamdp " + " ".join(shlex.quote(a) for a in argv)
    default_eps = config.mechanism.dp_image.epsilon
    paths = write_outputs(result, args.out, command, default_eps, samples, labels)
    if not args.quiet:
        print((args.out / "results.md").read_text(encoding="utf-8"))
        print(f"wrote {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - t0:.0f} s")
    return 0

