"""Progress of the evaluation's phases: tqdm bars on a terminal, plain periodic lines into a log."""

from __future__ import annotations

import time
from typing import Any


class LineProgress:
    """Progress as plain lines on stderr, for runs whose output goes to a log (no terminal):
    one line per 10% or per 5 minutes, whichever comes first, with the elapsed and remaining time."""

    def __init__(self, total: int, desc: str, every_s: float = 300.0) -> None:
        self.total, self.desc, self.every_s = max(int(total), 1), desc, every_s
        self.n = 0
        self.t0 = self.last_t = time.perf_counter()
        self.last_decile = 0

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.n and self.n < self.total and not any(exc):
            self._emit()

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.perf_counter()
        decile = 10 * self.n // self.total
        if decile > self.last_decile or now - self.last_t >= self.every_s or self.n >= self.total:
            self.last_decile, self.last_t = decile, now
            self._emit()

    def _emit(self) -> None:
        import sys

        el = time.perf_counter() - self.t0
        left = el / self.n * (self.total - self.n) if self.n else float("nan")
        print(
            f"streamdp eval: {self.desc}: {self.n}/{self.total} ({100 * self.n / self.total:.0f}%), "
            f"{el / 60:.1f} min elapsed, ~{left / 60:.1f} min left",
            file=sys.stderr,
            flush=True,
        )


def progress_bar(total: int, desc: str, enabled: bool, lines: bool = False) -> Any:
    from tqdm import tqdm

    if lines and not enabled:
        return LineProgress(total, desc)
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, dynamic_ncols=True, leave=False)
