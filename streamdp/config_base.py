"""The base of every configuration section (kept apart from config.py so that the modules that
declare a section, such as a mechanism, need not import the whole configuration: no cycle)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A configuration section: unknown keys are errors (a typo in a privacy setting must never be
    silently ignored) and assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
