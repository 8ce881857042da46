"""Ray start-up shared by ``batch`` and the fleet: a small local Ray by default, or a cluster."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ConfigError


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("this command needs Ray: pip install 'streamdp[scale]'") from None
    return ray


def start_ray(address: str | None, num_cpus: int) -> Any:
    """Connect to the cluster at ``address``, or start a local Ray with ``num_cpus`` slots (no
    dashboard, worker logs kept in Ray's session folder rather than on this terminal)."""
    ray = import_ray()
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # A local Ray turns token authentication on by itself and says so on every start:
            # secure already, nothing for the user to do, so that one warning is muted.
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            ray.init(num_cpus=num_cpus, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ConfigError(f"cannot start {where}: {exc}") from None
    return ray
