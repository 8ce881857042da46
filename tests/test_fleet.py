"""Camera fleets on Ray (``streamdp relay --ray``): simulated cameras (looped clips) publish
anonymized into a loopback RTSP server, each from its own actor; one actor is killed and only it
is restarted. Bounded: every wait has a deadline, the fleet a duration."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import av
import pytest

from conftest import MEDIA, needs_media
from rtsp_server import free_port, read_frames

ray = pytest.importorskip("ray", reason="camera fleets need Ray (pip install -e '.[scale]')")
pytestmark = needs_media

from streamdp.config import load_config  # noqa: E402
from streamdp.live.rtsp_server import RtspServer  # noqa: E402
from streamdp.scale.fleet import Supervisor, fleet_report  # noqa: E402

CAMERAS = ("door", "hall", "yard")


def _small_clip(dst: Path) -> Path:
    """carphone (one face, 176x144) at 10 fps: three cameras stay light on a small machine."""
    with av.open(str(MEDIA / "carphone_pristine.mp4")) as inp, av.open(str(dst), "w") as out:
        st = out.add_stream("libx264", rate=10)
        st.width, st.height, st.pix_fmt = 176, 144, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i % 3 == 0:
                small = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                small.pts = i // 3
                out.mux(st.encode(small))
        out.mux(st.encode(None))
    return dst


def _until(what: str, check, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _frames(url: str, n: int = 5, seconds: float = 10.0) -> int:
    got = 0
    for _ in read_frames(url, seconds, open_timeout=10.0):
        got += 1
        if got >= n:
            break
    return got


def _all_pids(sup: Supervisor, unlike: dict[str, int] | None = None) -> dict[str, int] | None:
    """Every camera's actor pid, once all have announced themselves (and differ from ``unlike``)."""
    pids = sup.processes()
    if len(pids) < len(CAMERAS) or any(pids[k] == v for k, v in (unlike or {}).items()):
        return None
    return pids


def test_fleet_restarts_only_the_killed_camera(tmp_path: Path) -> None:
    clip = _small_clip(tmp_path / "cam.mp4")
    server = RtspServer("127.0.0.1", free_port()).start()
    config = load_config(None, {"mechanism.name": "pixelate"})
    streams = [{"name": n, "input": str(clip), "output": server.url(n)} for n in CAMERAS]
    ray.init(num_cpus=len(CAMERAS), include_dashboard=False, log_to_driver=False, configure_logging=False)
    sup = Supervisor(ray, config.model_dump(mode="json"), [[s] for s in streams], loop=True, backoff=(0.5, 2.0))
    fleet = threading.Thread(target=sup.run, kwargs={"duration_s": 150.0}, daemon=True)
    try:
        fleet.start()
        _until("every camera publishing", lambda: set(server.paths()) >= set(CAMERAS), 90)
        pids = _until("every actor's pid", lambda: _all_pids(sup), 30)
        assert len(set(pids.values())) == len(CAMERAS), "each camera runs in its own process"
        assert _frames(server.url("hall")) >= 5

        os.kill(pids["hall"], signal.SIGKILL)  # the hall camera's process crashes
        new = _until("hall's actor restarted", lambda: _all_pids(sup, unlike={"hall": pids["hall"]}), 60)
        _until("hall publishing again", lambda: "hall" in server.paths(), 60)
        assert _frames(server.url("hall")) >= 5
        assert {n: new[n] for n in ("door", "yard")} == {n: pids[n] for n in ("door", "yard")}, \
            "another camera's actor was restarted"
        assert _frames(server.url("door")) >= 5
    finally:
        sup.stop_event.set()
        fleet.join(60)
        server.stop()
        ray.shutdown()
    assert not fleet.is_alive()
    report = fleet_report(sup.groups)
    groups = {g["name"]: g for g in report["groups"]}
    assert groups["hall"]["restarts"] == 1 and len(groups["hall"]["failures"]) == 1
    assert groups["door"]["restarts"] == 0 and groups["yard"]["restarts"] == 0
    assert all(g["ended_cleanly"] for g in groups.values()), report["groups"]
    assert {s["name"] for s in report["streams"]} == set(CAMERAS)
    assert all(s["counts"]["frames_in"] > 0 for s in report["streams"])
