"""``streamdp config show`` (the effective configuration as YAML) and ``streamdp config list``.

``show`` builds the configuration exactly as the command it names would (``--for run|live|relay``:
defaults < ``--config`` file or preset < flags, through that command's own override code), so
what it prints is what that command runs with. Secrets in URLs (stream credentials, tokens) are
redacted. An invalid file is the same one-line error, exit 2, as the command itself would give.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import ConfigError
from .mechanisms.registry import cover_mechanisms, mechanism_help
from .presets import config_path, preset_names, preset_path, preset_summary

_COMMANDS = ("run", "live", "relay")
# Flags each command takes (the others are refused: a flag that command ignores would print a
# configuration it never runs with).
_RUN_ONLY = ("epsilon", "release_interval")
_LIVE_ONLY = ("fps", "deadline_ms", "fallback", "metrics_port", "metrics_host", "transport", "size")


def add_config_parser(sub: Any) -> None:
    """Register ``config show`` and ``config list`` on the main parser's subparsers."""
    from .live.cli import _port, _size

    config = sub.add_parser("config", help="show the effective configuration, list the presets")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")

    show = actions.add_parser(
        "show", help="print the effective configuration as YAML (defaults < --config < flags)",
        description="Print the configuration a command would run with, as YAML: the defaults, then "
        "--config (a file or a preset name), then the flags. Secrets in URLs are redacted.",
    )
    show.add_argument("--for", dest="target", choices=_COMMANDS, default="run",
                      help="the command whose configuration to show (default run; live and relay "
                           "render dp-image's new faces in the background)")
    show.add_argument("-c", "--config", type=config_path, help="YAML config file or preset name (streamdp config list)")
    show.add_argument("-m", "--mechanism", metavar="NAME", help=mechanism_help())
    show.add_argument("--epsilon", type=float, help="run: dp-image's privacy budget per release")
    show.add_argument("--release-interval", type=float, help="run: dp-image's seconds between fresh noise draws")
    show.add_argument("--fps", type=float, help="live/relay: output frame rate")
    show.add_argument("--deadline-ms", type=float, help="live/relay: capture->publish deadline")
    show.add_argument("--fallback", choices=cover_mechanisms(), help="live/relay: cover used past the deadline")
    show.add_argument("--metrics-port", type=_port, help="live/relay: Prometheus port")
    show.add_argument("--metrics-host", help="live/relay: address of the metrics endpoint")
    show.add_argument("--transport", choices=["tcp", "udp"], help="relay: RTSP input transport")
    show.add_argument("--size", type=_size, metavar="WxH", help="live: resolution asked of the camera")
    show.set_defaults(handler=cmd_show)

    listing = actions.add_parser("list", help="the shipped presets (--config NAME) and what each is for")
    listing.set_defaults(handler=cmd_list)


def _refuse_foreign_flags(args: argparse.Namespace) -> None:
    foreign = _LIVE_ONLY if args.target == "run" else _RUN_ONLY
    if args.target == "live":
        foreign = foreign + ("transport",)
    if args.target == "relay":
        foreign = foreign + ("size",)
    given = [name for name in foreign if getattr(args, name, None) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"{flag} is not a flag of 'streamdp {args.target}'")


def effective_config(args: argparse.Namespace) -> Any:
    """The ``Config`` that ``streamdp <args.target>`` would build from these arguments."""
    _refuse_foreign_flags(args)
    if args.target == "run":
        from .cli import _overrides
        from .config import load_config

        return load_config(args.config, _overrides(args))
    from .live import cli as live_cli

    command = argparse.Namespace(**vars(args))
    command.handler = live_cli.cmd_live if args.target == "live" else live_cli.cmd_relay
    return live_cli.load_live_config(command)


def redacted(value: Any) -> Any:
    """``value`` (a JSON-like tree) with every URL's credentials and secret query values masked."""
    from .live.redact import redact_text

    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def render_yaml(config: Any, header: str) -> str:
    import yaml

    body = yaml.safe_dump(redacted(config.model_dump(mode="json")), sort_keys=False, default_flow_style=False)
    return f"{header}\n{body}"


def cmd_show(args: argparse.Namespace, argv: list[str]) -> int:
    """``streamdp config show``: the effective configuration, YAML on stdout."""
    config = effective_config(args)
    source = f"defaults < {args.config}" if args.config else "defaults"
    header = f"# effective configuration of 'streamdp {args.target}': {source} < flags (URLs redacted)"
    sys.stdout.write(render_yaml(config, header))
    return 0


def cmd_list(args: argparse.Namespace, argv: list[str]) -> int:
    """``streamdp config list``: each preset's name and first comment line."""
    names = preset_names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        path = preset_path(name)
        print(f"{name:<{width}}  {preset_summary(path) if path else ''}")
    return 0
