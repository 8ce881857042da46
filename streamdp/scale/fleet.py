"""Camera fleets on Ray: ``streamdp relay --ray`` with many ``live.streams``.

Each group of cameras (``--cameras-per-actor``, default one camera) runs in its own Ray actor:
a whole live session (``live.session.LiveSession``: sources with their reconnects, one detector
per stream, one batched privatizer for the group's streams, the RTSP publishers). A supervisor
on the driver watches the actors: when one dies (a crash in native code, killed, out of memory)
or its session fails, only that group is restarted, after an exponential backoff that resets
once the group has run steadily for a while; the other cameras never notice::

    driver: Supervisor ── start/restart with backoff ──► [actor: group 0] LiveSession(cam0)
               │   ▲                                     [actor: group 1] LiveSession(cam1, cam2)
               │   └─ ray.wait: a group's run() ended/failed ...
               └─ FleetControl actor: stop flag, each actor's pid (for the report, and tests)

The privatizer is shared per actor (per group), not per node: cameras that should share one
batched model put themselves in one group. Stopping (``--duration``, Ctrl-C) sets the stop flag;
each actor's session stops as on a signal (recordings finished) and returns its report.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("streamdp.fleet")

STABLE_S = 30.0  # a group that ran this long resets its backoff
POLL_S = 0.5
STOP_TIMEOUT_S = 15.0  # per fleet stop: sessions close their outputs within this


class FleetControl:
    """The fleet's shared state (a tiny actor): the stop flag and which process runs each group."""

    def __init__(self) -> None:
        self.stop = False
        self.pids: dict[str, int] = {}

    def request_stop(self) -> None:
        self.stop = True

    def stopping(self) -> bool:
        return self.stop

    def hello(self, group: str, pid: int) -> None:
        self.pids[group] = pid

    def processes(self) -> dict[str, int]:
        return dict(self.pids)


class CameraGroup:
    """Actor body: one live session over a group of cameras, until the fleet stops."""

    def __init__(self, config_dump: dict[str, Any], streams: list[dict[str, Any]], group: str, control: Any,
                 loop: bool = False) -> None:
        from ..config import Config, LiveStreamConfig

        sys.setswitchinterval(0.001)  # as cli.main: stage threads wait less for the GIL
        self.config = Config.model_validate(config_dump)
        self.specs = [LiveStreamConfig.model_validate(s) for s in streams]
        self.group, self.control, self.loop = group, control, loop

    def _watch(self, session: Any, done: threading.Event) -> None:
        """Stop the session when the fleet says so (no signal reaches an actor from the driver)."""
        import ray

        while not done.wait(POLL_S):
            if session.pipeline is not None and ray.get(self.control.stopping.remote()):
                session.pipeline.stop_event.set()
                return

    def run(self) -> dict[str, Any]:
        """Run until the fleet stops or every input ends; the pipeline's report. Raises when the
        session fails (the supervisor restarts the group)."""
        from ..live.session import LiveSession, SessionOptions

        self.control.hello.remote(self.group, os.getpid())
        session = LiveSession(self.config, SessionOptions(quiet=True), [])
        session.add_config_streams(self.specs, loop=self.loop)
        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(session, done), name="fleet-watch", daemon=True)
        watcher.start()
        try:
            session.run()
        finally:
            done.set()
        assert session.pipeline is not None
        return session.pipeline.report()


@dataclass
class GroupState:
    name: str
    streams: list[dict[str, Any]]
    actor: Any = None
    ref: Any = None
    started: float = 0.0
    restart_at: float | None = None
    restarts: int = 0
    failures: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    backoff: Any = None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1][:200] if lines else ''}"


class Supervisor:
    """Starts one actor per group and restarts a failed group with backoff, never the fleet.
    ``groups``: lists of ``live.streams`` entries as dicts, each with its ``name``."""

    def __init__(self, ray: Any, config_dump: dict[str, Any], groups: list[list[dict[str, Any]]], loop: bool = False,
                 backoff: tuple[float, float] = (1.0, 30.0), cpus_per_group: float = 1.0) -> None:
        from ..live.backoff import Backoff

        self.ray = ray
        self.config_dump = config_dump
        self.loop = loop
        self.cpus = cpus_per_group
        self.control = ray.remote(num_cpus=0)(FleetControl).remote()
        self.groups = [GroupState("+".join(s["name"] for s in g), g, backoff=Backoff(*backoff)) for g in groups]
        self.stop_event = threading.Event()

    def _start(self, g: GroupState) -> None:
        actor_cls = self.ray.remote(num_cpus=self.cpus, max_restarts=0)(CameraGroup)
        g.actor = actor_cls.remote(self.config_dump, g.streams, g.name, self.control, self.loop)
        g.ref, g.started, g.restart_at = g.actor.run.remote(), time.monotonic(), None

    def _ended(self, g: GroupState) -> None:
        try:
            g.report = self.ray.get(g.ref)
            g.ref = None  # its inputs ended (files without --loop): nothing to restart
            return
        except Exception as exc:  # noqa: BLE001 - the actor died or its session failed
            reason = _reason(exc)
        g.ref = None
        g.failures.append(reason)
        self.ray.kill(g.actor)
        if self.stop_event.is_set():
            return
        delay = g.backoff.next_delay()
        g.restart_at = time.monotonic() + delay
        log.warning("fleet: %s failed (%s); restarting in %.1f s", g.name, reason, delay)

    def processes(self) -> dict[str, int]:
        """group -> pid of the process running it now (as each actor announced itself)."""
        return self.ray.get(self.control.processes.remote())

    def run(self, duration_s: float | None = None) -> list[GroupState]:
        """Supervise until ``stop_event`` is set, ``duration_s`` passed or every group ended."""
        for g in self.groups:
            self._start(g)
        t_end = time.monotonic() + duration_s if duration_s else None
        try:
            while not self.stop_event.is_set() and (t_end is None or time.monotonic() < t_end):
                running = {g.ref: g for g in self.groups if g.ref is not None}
                waiting = [g for g in self.groups if g.restart_at is not None]
                if not running and not waiting:
                    break  # every group's inputs ended
                if running:
                    ready, _ = self.ray.wait(list(running), num_returns=len(running), timeout=POLL_S)
                    for ref in ready:
                        self._ended(running[ref])
                else:
                    self.stop_event.wait(POLL_S)
                now = time.monotonic()
                for g in self.groups:
                    if g.ref is not None and now - g.started > STABLE_S:
                        g.backoff.reset()
                    if g.restart_at is not None and now >= g.restart_at:
                        g.restarts += 1
                        self._start(g)
        finally:
            self._stop_all()
        return self.groups

    def _stop_all(self) -> None:
        self.stop_event.set()
        self.ray.get(self.control.request_stop.remote())
        running = {g.ref: g for g in self.groups if g.ref is not None}
        ready, late = self.ray.wait(list(running), num_returns=len(running), timeout=STOP_TIMEOUT_S) if running else ([], [])
        for ref in ready:
            self._ended(running[ref])
        for ref in late:
            self.ray.kill(running[ref].actor)
            running[ref].failures.append(f"did not stop within {STOP_TIMEOUT_S:g} s (killed)")


def fleet_report(groups: list[GroupState]) -> dict[str, Any]:
    streams: list[dict[str, Any]] = []
    for g in groups:
        streams.extend((g.report or {}).get("streams", []))
    return {
        "mode": "fleet",
        "groups": [{"name": g.name, "streams": [s.get("name") for s in g.streams], "restarts": g.restarts,
                    "failures": g.failures, "ended_cleanly": g.report is not None} for g in groups],
        "streams": streams,
    }


def cmd_fleet(args: Any, argv: list[str]) -> int:
    """``streamdp relay --ray``: ``live.streams`` on Ray actors until ``--duration`` or Ctrl-C."""
    from ..errors import ConfigError
    from ..live.cli import guard_live_command, load_live_config
    from ..live.redact import redact_text
    from ..report import write_json_atomic
    from .raylocal import start_ray

    def fleet(args: Any, argv: list[str]) -> int:
        if args.input or args.output or args.record or args.serve is not None or args.show:
            raise ConfigError("relay --ray runs live.streams from --config (per-stream output/record there); "
                              "INPUT, OUTPUT, -o, --serve and --show are for a single relay")
        config = load_live_config(args)
        if not config.live.streams:
            raise ConfigError("relay --ray needs live.streams in --config (see configs/multi.yaml)")
        if config.live.metrics_port is not None:
            log.warning("fleet: live.metrics_port is ignored (one port cannot serve every actor)")
            config.live.metrics_port = None
        # Named as the relay names them, so logs, metrics and the report read the same.
        specs = [{**s.model_dump(mode="json"), "name": s.name or f"stream{i}"} for i, s in enumerate(config.live.streams)]
        n = args.cameras_per_actor
        groups = [specs[i:i + n] for i in range(0, len(specs), n)]
        ray = start_ray(args.address, num_cpus=max(len(groups), os.cpu_count() or 1))
        try:
            sup = Supervisor(ray, config.model_dump(mode="json"), groups, loop=args.loop)
            try:
                sup.run(args.duration)
            except KeyboardInterrupt:
                pass  # run() has stopped every group on its way out
            report = fleet_report(sup.groups)
        finally:
            ray.shutdown()
        if args.report:
            write_json_atomic(args.report, report)
        if not args.quiet:
            for g in report["groups"]:
                print(redact_text(f"{g['name']}: {len(g['streams'])} stream(s), {g['restarts']} restart(s)"
                                  + (f"; last failure: {g['failures'][-1]}" if g["failures"] else "")))
        return 0 if all(g["ended_cleanly"] for g in report["groups"]) else 1

    return guard_live_command(fleet, args, argv)
