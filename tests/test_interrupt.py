"""Ctrl-C during a run: a playable NAME.partial.EXT of what was done, nothing at the output path."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from conftest import MEDIA, need_shared
from streamdp.media import TMP_MARKER


@pytest.mark.timeout(180)
def test_ctrl_c_leaves_a_playable_partial_file_and_nothing_at_the_output(tmp_path: Path) -> None:
    src = need_shared(MEDIA / "WolfgangLanger_Pexels.mp4")
    dst = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamdp", "run", str(src), "-o", str(dst), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupt once the encoder has written a good part of the temp file (bounded wait).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in tmp_path.iterdir() if TMP_MARKER in p.name]
            if temps and temps[0].stat().st_size > 64_000:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.skip("the run finished before it could be interrupted (machine too fast for this clip)")
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=30)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert stop_s < 10, f"took {stop_s:.1f} s to stop"
    assert not dst.exists(), "an interrupted run must not leave a file at the output path"
    assert not [p for p in tmp_path.iterdir() if TMP_MARKER in p.name], "temp files left behind"
    partial = tmp_path / "out.partial.mp4"
    assert partial.exists(), f"no partial file; stderr: {err}"
    with av.open(str(partial)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert 0 < n < 472
