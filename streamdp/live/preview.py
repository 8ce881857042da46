"""``--show``: a preview window of the anonymized output (OpenCV HighGUI). q or Esc quits.

HighGUI wants one thread: the sink only stores the newest frame; the main thread calls
``pump()`` to draw it and read the keyboard.
"""

from __future__ import annotations

import os
import sys
import threading

from ..errors import ConfigError
from .covered import CoveredFrame
from .sinks import Sink
from .slot import LatestSlot

QUIT_KEYS = {ord("q"), ord("Q"), 27}


def check_display() -> None:
    """Fail early, with one line, where no window can be opened."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError("--show needs a display (DISPLAY or WAYLAND_DISPLAY is not set)")


class PreviewSink(Sink):
    name = "preview"
    measure_latency = False

    def __init__(self, title: str, stop: threading.Event) -> None:
        self.title = title
        self.stop = stop
        self._slot: LatestSlot[CoveredFrame] = LatestSlot()
        self._shown = False

    def write(self, frame: CoveredFrame, t_out: float) -> bool:
        self._slot.put(frame)
        return True

    def pump(self, wait_s: float = 0.02) -> None:
        """Draw the newest frame and poll the keyboard (main thread only)."""
        import cv2

        frame = self._slot.get(timeout=wait_s)
        if frame is not None:
            cv2.imshow(self.title, cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
            self._shown = True
        if not self._shown:
            return
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if key in QUIT_KEYS or closed:
            self.stop.set()

    def close(self) -> None:
        pass  # the window belongs to the main thread: see destroy()

    def destroy(self) -> None:
        if self._shown:
            import cv2

            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
