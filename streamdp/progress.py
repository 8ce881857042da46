"""Progress bars (tqdm): frames, fps and ETA on a terminal; silent otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm


class Progress:
    """One bar per file (frames), plus a files bar for folder runs."""

    def __init__(self, enabled: bool, files: int = 1) -> None:
        self.enabled = enabled
        self.files_bar: Any = None
        self.bar: Any = None
        self._started = False  # a file bar has been opened (the files bar counts finished ones)
        if enabled and files > 1:
            self.files_bar = tqdm(total=files, unit="file", desc="files", position=0, dynamic_ncols=True)

    def start_file(self, path: Path) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.files_bar is not None and self._started:
            self.files_bar.update(1)
        self._started = True
        if self.enabled:
            self.bar = tqdm(
                total=None,
                unit="frame",
                desc=path.name[:40],
                position=1 if self.files_bar is not None else 0,
                leave=self.files_bar is None,
                dynamic_ncols=True,
            )

    def set_total(self, total: int | None) -> None:
        if self.bar is not None and total:
            self.bar.total = total
            self.bar.refresh()

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.files_bar is not None:
            if self._started:
                self.files_bar.update(1)
            self.files_bar.close()
