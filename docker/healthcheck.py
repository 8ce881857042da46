"""Container health check: every live metrics endpoint of the streamdp processes here answers.

``streamdp live`` and ``streamdp relay`` serve Prometheus metrics on ``--metrics-port`` (or the
config's ``live.metrics_port``) at ``/metrics``. This script finds the streamdp processes in the
container (``/proc``), works out each one's endpoint from its own command line (and the YAML
config or preset it names, a path relative to its working directory) and GETs it: exit 0 when every endpoint
answers 200 with a body, 1 otherwise.

A container with no such endpoint (``streamdp run`` on files, ``--help``, a live command without a
metrics port, or port 0 whose pick is not known from outside) is healthy: there is nothing to ask,
and a file run ends with its own exit status. Standard library (plus PyYAML, a streamdp
dependency, only when a config is named): it runs every 30 s and must stay cheap.
"""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LIVE_COMMANDS = ("live", "relay")
ANY_ADDRESS = ("0.0.0.0", "::", "")
DEFAULT_HOST = "127.0.0.1"  # streamdp's default live.metrics_host


@dataclass(frozen=True)
class Endpoint:
    pid: int
    host: str
    port: int

    @property
    def url(self) -> str:
        host = DEFAULT_HOST if self.host in ANY_ADDRESS else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"


def streamdp_args(argv: list[str]) -> list[str] | None:
    """The arguments after ``streamdp`` (the console script, or ``python -m streamdp``), else None."""
    for i, arg in enumerate(argv):
        after_m = i > 0 and argv[i - 1] == "-m"
        if Path(arg).name == "streamdp" and (after_m or i == 0 or "/" in arg):
            return argv[i + 1 :]
    return None


def _option(args: list[str], *names: str) -> str | None:
    """The last value given to one of ``names`` (``--x V``, ``--x=V``, ``-cV``); argparse keeps the last."""
    value = None
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                value = args[i + 1]
            elif name.startswith("--") and arg.startswith(name + "="):
                value = arg[len(name) + 1 :]
            elif not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                value = arg[len(name) :]
    return value


def _config_live(path: Path) -> dict:
    import yaml

    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    live = data.get("live") if isinstance(data, dict) else None
    return live if isinstance(live, dict) else {}


def config_file(text: str, cwd: Path) -> Path:
    """What ``--config TEXT`` names: a path (relative to the process's folder), else a preset name
    (``--config relay``) looked up the way streamdp does."""
    path = Path(text) if Path(text).is_absolute() else cwd / text
    if path.exists():
        return path
    try:
        from streamdp.presets import preset_path
    except ImportError:
        return path
    return preset_path(text) or path


def endpoint_of(pid: int, argv: list[str], cwd: Path) -> Endpoint | None:
    """The metrics endpoint a streamdp live/relay command line serves, or None."""
    args = streamdp_args(argv)
    if not args or args[0] not in LIVE_COMMANDS:
        return None
    rest = args[1:]
    live: dict = {}
    config = _option(rest, "--config", "-c")
    if config is not None:
        try:
            live = _config_live(config_file(config, cwd))
        except (OSError, ValueError, ImportError):
            live = {}  # streamdp itself refuses a config it cannot read: the process is exiting
    port = _option(rest, "--metrics-port")
    host = _option(rest, "--metrics-host")
    port_value = port if port is not None else live.get("metrics_port")
    try:
        port_number = int(port_value) if port_value is not None else 0
    except (TypeError, ValueError):
        return None
    if port_number <= 0:
        return None
    return Endpoint(pid, str(host if host is not None else live.get("metrics_host") or DEFAULT_HOST), port_number)


def endpoints(proc: Path = Path("/proc")) -> list[Endpoint]:
    found = []
    for entry in sorted(proc.iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            cwd = (entry / "cwd").resolve()
        except OSError:
            continue  # gone, or not ours to read
        argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
        ep = endpoint_of(int(entry.name), argv, cwd)
        if ep is not None:
            found.append(ep)
    return found


def probe(endpoint: Endpoint, timeout: float = 3.0) -> str | None:
    """None when the endpoint answers 200 with a body, else why not."""
    try:
        with urllib.request.urlopen(endpoint.url, timeout=timeout) as resp:
            if resp.status != 200:
                return f"HTTP {resp.status}"
            if not resp.read(1):
                return "empty body"
    except OSError as exc:  # URLError, HTTPError, timeouts, refused connections
        return str(exc)
    return None


def main(proc: Path = Path("/proc"), timeout: float = 3.0) -> int:
    found = endpoints(proc)
    if not found:
        print("healthy: no streamdp live metrics endpoint here to check")
        return 0
    failed = 0
    for ep in found:
        why = probe(ep, timeout)
        print(f"{'ok' if why is None else 'FAIL'}: pid {ep.pid} {ep.url}" + ("" if why is None else f": {why}"))
        failed += why is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
