"""How the evaluation's numbers are written in its tables and plots: percent, number, epsilon, markdown."""

from __future__ import annotations

import math
from typing import Any


def pct(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{100 * x:.{digits}f}"


def num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def eps_text(e: Any) -> str:
    if e is None:
        return "–"
    if isinstance(e, float) and math.isinf(e):
        return "∞"
    return f"{e:g}"


def md_table(head: list[str], rows: list[list[str]]) -> str:
    """A markdown table: header, separator, one line per row of cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)
