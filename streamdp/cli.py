"""Command line: ``streamdp run | train``.

Everything the user typed is validated here, once, into a ``Config`` and a list of jobs; errors
become one line on stderr and a non-zero exit (2 for bad input, 1 for files that failed in a folder
run, 130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, StreamdpError
from .config_cli import add_config_parser
from .eval.cli import add_eval_parser
from .live.cli import add_live_parsers
from .logs import add_log_format_option, setup_logging
from .mechanisms.registry import mechanism_help
from .presets import config_path
from .scale.cli import add_scale_parsers

log = logging.getLogger("streamdp")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamdp", description="Replace every face in videos and images with a privatized face."
    )
    parser.add_argument("--version", action="version", version=f"streamdp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="anonymize a video, an image or a folder of them")
    run.add_argument("input", type=Path, help="video file, image file or folder (searched recursively)")
    run.add_argument("-o", "--output", type=Path, required=True, help="output file (or folder for folder input)")
    run.add_argument("-m", "--mechanism", metavar="NAME", help=f"{mechanism_help()} (default from config)")
    run.add_argument("-c", "--config", type=config_path, help="YAML config file or preset name (streamdp config list)")
    run.add_argument("--report", type=Path, help="write a JSON report of the run here")
    run.add_argument("--epsilon", type=float, help="dp-image: privacy budget per release")
    run.add_argument("--release-interval", type=float, help="dp-image: seconds between fresh noise draws per face")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_log_format_option(run)

    train = sub.add_parser("train", help="train the DP-Image face model (needs the 'train' extra)")
    train.add_argument("--config", type=Path, default=Path("configs/train.yaml"))
    train.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    add_live_parsers(sub)
    add_eval_parser(sub)
    add_config_parser(sub)
    add_scale_parsers(sub)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.mechanism:
        out["mechanism.name"] = args.mechanism
    if args.epsilon is not None:
        out["mechanism.dp_image.epsilon"] = args.epsilon
    if args.release_interval is not None:
        out["mechanism.dp_image.release_interval"] = args.release_interval
    return out


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    from .config import load_config
    from .media import plan_jobs
    from .progress import Progress
    from .report import check_report_path
    from .runner import run_jobs

    config = load_config(args.config, _overrides(args))
    jobs = plan_jobs(args.input, args.output)
    check_report_path(args.report, [args.input] + [j.src for j in jobs])
    started = datetime.now(timezone.utc)
    show = not args.quiet and sys.stderr.isatty()
    with Progress(enabled=show, files=len(jobs)) as progress:
        outcome = run_jobs(jobs, config, progress)
    if args.report:
        from .report import build_report, write_json_atomic

        write_json_atomic(args.report, build_report(argv, config.model_dump(mode="json"), outcome.entries, started))
    if not args.quiet:
        for line in outcome.summary_lines():
            print(line)
        if args.report:
            print(f"report: {args.report}")
    if outcome.interrupted:
        partial = [e["output"] for e in outcome.entries if e["status"] == "partial" and e.get("partial")]
        where = f"; what was done is in {partial[0]}" if partial else "; nothing was written"
        print(f"streamdp: interrupted{where}", file=sys.stderr)
        return 130
    if outcome.failed:
        return 1
    return 0


def cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        from .train.cli import main as train_main
    except ImportError as exc:
        raise ConfigError(
            f"training needs the 'train' extra (pip install 'streamdp[train]'): {exc}"
        ) from None
    return int(train_main(["--config", str(args.config), *args.rest]) or 0)


# Optional positionals argparse leaves unfilled when an option stands between them
# (``relay INPUT --loop OUTPUT``: it matches both positionals at INPUT, then OUTPUT is "extra").
_LATE_POSITIONALS = {"relay": ("input", "output")}


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, with a subcommand's optional positionals also filled from words given
    after an option (in order); anything else left over is the usual one-line error."""
    args, extra = parser.parse_known_args(argv)
    for name in _LATE_POSITIONALS.get(getattr(args, "command", None) or "", ()):
        if extra and getattr(args, name, None) is None and not extra[0].startswith("-"):
            setattr(args, name, extra.pop(0))
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(_parser(), argv)
    # Stage threads hand work to native code (MediaPipe dispatches every call through its own
    # worker thread) and wait for the GIL on return: a shorter switch interval cuts that wait.
    sys.setswitchinterval(0.001)
    setup_logging(getattr(args, "verbose", False), getattr(args, "log_format", "text"))
    try:
        if args.command == "run":
            return cmd_run(args, argv)
        if args.command == "train":
            return cmd_train(args, argv)
        if getattr(args, "handler", None) is not None:
            return args.handler(args, argv)
    except StreamdpError as exc:
        print(f"streamdp: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("streamdp: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
