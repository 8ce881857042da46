"""The mechanism interface every anonymizer implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..types import FrameJob


class Mechanism(ABC):
    """Covers the faces of a batch of frames in place.

    ``apply`` receives several frames at once (from the micro-batcher, possibly from several
    streams) so that model-based mechanisms can run one batched inference for all their faces.
    """

    name: str = "?"

    @abstractmethod
    def apply(self, jobs: list[FrameJob]) -> None:
        """Replace every face listed in each job's ``faces`` inside ``job.frame.image``."""

    def describe(self) -> dict[str, Any]:
        """Name and parameters, for the report."""
        return {"name": self.name}

    def privacy_report(self) -> dict[str, Any] | None:
        """Privacy spent (per track), for mechanisms that carry a formal guarantee."""
        return None

    def close(self) -> None:
        """Release models and worker resources."""
