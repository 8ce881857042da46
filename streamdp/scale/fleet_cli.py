"""``streamdp relay --ray``: the relay's ``live.streams`` as a camera fleet on Ray actors."""

from __future__ import annotations

import argparse


def add_fleet_options(relay: argparse.ArgumentParser) -> None:
    """Add the fleet options to ``relay``; its handler runs the fleet when ``--ray`` or
    ``--address`` is given and the plain relay otherwise."""
    from .cli import _positive

    group = relay.add_argument_group("camera fleet on Ray (for live.streams in --config)")
    group.add_argument("--ray", action="store_true",
                       help="run each camera (or group, --cameras-per-actor) in its own Ray actor, restarted "
                            "with backoff when it fails; a local Ray unless --address")
    group.add_argument("--address", help="join this Ray cluster (implies --ray)")
    group.add_argument("--cameras-per-actor", type=_positive, default=1, metavar="N",
                       help="cameras sharing one actor, its detector threads and one batched privatizer (default 1)")
    plain = relay.get_default("handler")

    def handler(args: argparse.Namespace, argv: list[str]) -> int:
        if args.ray or args.address:
            from .fleet import cmd_fleet

            return cmd_fleet(args, argv)
        return int(plain(args, argv))

    relay.set_defaults(handler=handler)
