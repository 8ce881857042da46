"""``streamdp batch`` (an archive on Ray) and ``streamdp relay --ray`` (a camera fleet on Ray).

``add_scale_parsers(subparsers)`` adds ``batch`` and gives the existing ``relay`` its
``--ray`` / ``--address`` / ``--cameras-per-actor`` options; a relay without them runs as before.
Ray is imported only inside the handlers.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..mechanisms.registry import mechanism_help
from ..logs import add_log_format_option
from ..presets import config_path

REPORT_NAME = "batch-report.json"


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {n}")
    return n


def add_scale_parsers(sub: Any) -> None:
    """Register ``batch``; extend ``relay`` (when registered before) with the fleet options."""
    batch = sub.add_parser(
        "batch", help="anonymize an archive of videos and images on Ray (resumable)",
        description="Anonymize every video and image of INPUTS (files or folders, searched recursively) into OUT "
        "on a local Ray (or a cluster: --address). A second run skips what is done and redoes what was cut off.",
    )
    batch.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="video, image or folder")
    batch.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    batch.add_argument("-m", "--mechanism", metavar="NAME", help=f"{mechanism_help()} (default from config)")
    batch.add_argument("-c", "--config", type=config_path, help="YAML config file or preset name (streamdp config list)")
    batch.add_argument("--epsilon", type=float, help="dp-image: privacy budget per release")
    batch.add_argument("--release-interval", type=float, help="dp-image: seconds between fresh noise draws per face")
    batch.add_argument("--report", type=Path, help=f"aggregate JSON report (default OUT/{REPORT_NAME})")
    batch.add_argument("--workers", type=_positive, help="worker actors (default: the CPUs of this machine, "
                       "or of the cluster with --address)")
    batch.add_argument("--address", help="join this Ray cluster (e.g. ray://head:10001 or auto) instead of a local Ray")
    batch.add_argument("--metrics-port", type=int, metavar="PORT",
                       help="serve Prometheus metrics (files, frames, faces, epsilon) on this port while it runs")
    batch.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics endpoint (default 127.0.0.1)")
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_log_format_option(batch)
    batch.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    batch.set_defaults(handler=cmd_batch)

    relay = sub.choices.get("relay")
    if relay is not None:
        from .fleet_cli import add_fleet_options

        add_fleet_options(relay)


def _workers(args: argparse.Namespace, ray: Any) -> int:
    if args.workers:
        return int(args.workers)
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def summary_lines(outcome: Any, report: dict[str, Any]) -> list[str]:
    s = report["summary"]
    done = s["files_ok"] - outcome.resumed
    lines = [
        f"batch: {s['files']} file{'s' * (s['files'] != 1)}: {done} anonymized, {outcome.resumed} already done, "
        f"{s['files_failed']} failed; {s['frames']} frames, {s['faces_detected']} faces detected"
    ]
    total = s.get("all_files_one_person")
    if total:
        eps = "inf" if total["epsilon"] == "inf" else f"{total['epsilon']:g}"
        lines.append(f"privacy over all files: {total['releases']} releases; a person in every one of them spends at "
                     f"most epsilon {eps} (all_files_one_person in the report)")
    return lines


def _metrics(args: argparse.Namespace) -> tuple[Any, Any]:
    """BatchMetrics and its endpoint when ``--metrics-port`` is given (else nothing)."""
    if args.metrics_port is None:
        return None, None
    from prometheus_client import CollectorRegistry

    from ..errors import ConfigError
    from ..metrics import BatchMetrics, serve_metrics

    registry = CollectorRegistry()
    metrics = BatchMetrics(registry)
    try:
        server = serve_metrics(registry, args.metrics_host, args.metrics_port)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: {exc.strerror}") from None
    if not args.quiet:
        print(f"metrics: http://{args.metrics_host}:{server.port}/metrics", file=sys.stderr)
    return metrics, server


def cmd_batch(args: argparse.Namespace, argv: list[str]) -> int:
    from ..cli import _overrides
    from ..config import load_config
    from ..report import build_report, check_report_path, write_json_atomic
    from .archive import check_inputs, iter_jobs, sweep_temp_files
    from .batch import run_batch
    from .raylocal import start_ray

    config = load_config(args.config, _overrides(args))
    inputs = [p.absolute() for p in args.inputs]
    out = args.output.absolute()
    check_inputs(inputs, out)
    report_path = args.report or out / REPORT_NAME
    check_report_path(report_path, inputs)
    swept = sweep_temp_files(out)
    started = datetime.now(timezone.utc)
    config_dump = config.model_dump(mode="json")
    ray_used: list[Any] = []

    def connect() -> tuple[Any, int]:
        ray = start_ray(args.address, num_cpus=args.workers or os.cpu_count() or 1)
        ray_used.append(ray)
        return ray, _workers(args, ray)

    metrics, server = _metrics(args)
    try:
        outcome = run_batch(iter_jobs(inputs, out), config_dump, connect,
                            progress=not args.quiet and sys.stderr.isatty(), metrics=metrics)
    finally:
        for ray in ray_used:
            ray.shutdown()
        if server is not None:
            server.stop()
    report = build_report(argv, config_dump, outcome.entries, started)
    report["summary"]["files_resumed"] = outcome.resumed
    report["summary"]["temp_files_swept"] = swept
    report["interrupted"] = outcome.interrupted
    report["failures"] = [{"input": e["input"], "error": e["error"]} for e in outcome.failures]
    write_json_atomic(report_path, report)
    for e in outcome.failures:
        print(f"FAILED {e['input']}: {e['error']}", file=sys.stderr)
    if not args.quiet:
        for line in summary_lines(outcome, report):
            print(line)
        print(f"report: {report_path}")
    if outcome.interrupted:
        print("streamdp: interrupted; run the same command again to finish", file=sys.stderr)
        return 130
    return 1 if outcome.failures else 0
