"""Progress from inside a plug-in that has no network: lines on its stdout.

A plug-in prints, on a line of its own::

    CIRCUS_PROGRESS <value> [<start> <end>]

``value`` is a fraction 0..1 of the current stage; the optional ``[start, end]`` (fractions of the
whole run, as in ITK-SNAP's DSS chunks) places that stage within the run, so sub-stages compose
without knowing each other: ``CIRCUS_PROGRESS 0.5 0.2 0.6`` means 40 % of the run. ``value`` may
also be ``done/total`` (``CIRCUS_PROGRESS 3/12``). Other lines are ignored, so a plug-in that
prints nothing of the kind runs exactly as before.

The operator reads only a bounded tail of the log (``TAIL_LINES`` lines, ``TAIL_BYTES`` bytes), at
a bounded rate, and takes the last valid line; progress never goes backwards in the status.
Standard library only: a plug-in written in Python may import ``line()`` from here or just print.
"""

from __future__ import annotations

import math
import re

PREFIX = "CIRCUS_PROGRESS"
TAIL_LINES = 40
TAIL_BYTES = 8192
_LINE = re.compile(
    rf"^\s*{PREFIX}\s+(?P<value>[0-9.eE+-]+(?:/[0-9.eE+-]+)?)(?:\s+(?P<start>[0-9.eE+-]+)\s+(?P<end>[0-9.eE+-]+))?\s*$"
)


def line(value: float, start: float = 0.0, end: float = 1.0) -> str:
    """The line a plug-in prints (flush stdout after it)."""
    if (start, end) == (0.0, 1.0):
        return f"{PREFIX} {value:.4g}"
    return f"{PREFIX} {value:.4g} {start:.4g} {end:.4g}"


def _fraction(text: str) -> float | None:
    try:
        if "/" in text:
            done, total = (float(part) for part in text.split("/", 1))
            value = done / total if total > 0 else math.nan
        else:
            value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_line(text: str) -> float | None:
    """The run's progress (0..1) a line says, or None when it is not a valid progress line."""
    match = _LINE.match(text)
    if not match:
        return None
    value = _fraction(match["value"])
    start = _fraction(match["start"]) if match["start"] else 0.0
    end = _fraction(match["end"]) if match["end"] else 1.0
    if value is None or start is None or end is None or not 0 <= start <= end <= 1:
        return None
    return start + min(max(value, 0.0), 1.0) * (end - start)


def latest(log_tail: str) -> float | None:
    """The last valid progress line in a log tail (None when there is none)."""
    for text in reversed(log_tail.splitlines()):
        value = parse_line(text)
        if value is not None:
            return value
    return None
