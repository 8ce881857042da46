"""``--serve PORT``: the built-in RTSP server (``rtsp_server.py``) in a child process.

A child process, not a thread: PyAV holds the GIL during the RTSP handshake, so a server thread
in the publishing process could not answer it. The relay publishes to the child over loopback
(``rtsp://127.0.0.1:PORT/PATH``) and viewers read ``rtsp://HOST:PORT/PATH``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from urllib.parse import quote

from ..errors import ConfigError

log = logging.getLogger(__name__)


class ServerProcess:
    def __init__(self, host: str, port: int, start_timeout: float = 10.0, auth: str | None = None,
                 auth_scheme: str = "digest") -> None:
        self.host = host
        self.port = port
        self.auth = auth  # "user:password" (to the child in its environment, never its command line)
        self.auth_scheme = auth_scheme  # what the server's 401 offers: digest | basic | any (not secret)
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        cmd = [sys.executable, "-m", "streamdp.live.rtsp_server", "--host", self.host, "--port", str(self.port), "--exit-with-parent",
               "--auth-scheme", self.auth_scheme]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("STREAMDP_RTSP_AUTH", None)
        if self.auth:
            env["STREAMDP_RTSP_AUTH"] = self.auth
        # stderr is inherited: the server's rare warnings ("rtsp-server: ...") join the relay's.
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self._proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(self.start_timeout)
        if not line or "port=" not in line[0]:
            self.stop()
            raise ConfigError(f"--serve: the RTSP server could not listen on {self.host}:{self.port}")
        self.port = int(line[0].split("port=")[1].split()[0])
        log.info("rtsp server listening on %s:%d", self.host, self.port)
        return self

    def publish_url(self, path: str) -> str:
        """Where the relay publishes (loopback), with the credentials when there are any (the
        publisher's logs redact them: live/redact.py)."""
        cred = ""
        if self.auth:
            user, _, password = self.auth.partition(":")
            cred = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        return f"rtsp://{cred}127.0.0.1:{self.port}/{path.strip('/')}"

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 2.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None:
                proc.kill()
                proc.wait(1.0)
        if proc.stdout is not None:
            proc.stdout.close()
