"""The live run report (``--report FILE.json``) and the summary lines; URLs are redacted."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..config import Config
from .redact import redact_text, redact_url


def _redacted_config(config: Config) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    for stream in data.get("live", {}).get("streams", []):
        for key in ("input", "output"):
            if stream.get(key):
                stream[key] = redact_url(stream[key])
    return data


def live_report(argv: list[str], config: Config, run: dict[str, Any], started: datetime) -> dict[str, Any]:
    from ..report import host, versions

    return {
        "tool": "streamdp",
        "mode": "live",
        "command": ["streamdp", *(redact_text(a) for a in argv)],
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **run,
        "config": _redacted_config(config),
        "versions": versions(),
        "host": {k: v for k, v in host(config.detect.backend).items() if k != "argv0"},
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for s in report.get("streams", []):
        c = s["counts"]
        lat = "; ".join(
            f"{sink} latency p50 {v['p50_ms']} ms, p95 {v['p95_ms']} ms"
            for sink, v in s.get("latency_capture_to_publish", {}).items()
            if v.get("samples")
        )
        lines.append(
            f"stream {s['name']}: {c['frames_in']} frames in ({s['fps_in']} fps), "
            f"{c['frames_published']} published + {c['frames_repeated']} repeats ({s['fps_out']} fps out), "
            f"{c['frames_dropped_stale']} stale + {c['frames_dropped_late']} late dropped, "
            f"{c['frames_fallback']} fallback-covered, {c['input_errors']} input errors"
            + (f"; {lat}" if lat else "")
        )
    if report.get("stopped_by"):
        lines.append(f"stopped: {report['stopped_by']}")
    return lines
