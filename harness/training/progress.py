"""Progress lines of the trainers: a time-stamped line, a rate with its ETA, a duration in words."""

from __future__ import annotations

import time


def log(message: str) -> None:
    """Print ``message`` after the wall-clock time, flushed at once (runs are watched through pipes and logs)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def rate(done: int, total: int, started: float, unit: str) -> str:
    """``done`` of ``total`` units since ``started`` (a ``time.time()``), as ``"1,234 frames/s | ETA 2.0 min"``."""
    per_second = done / max(time.time() - started, 1e-9)
    return f"{per_second:,.0f} {unit}/s | ETA {max(total - done, 0) / max(per_second, 1e-9) / 60:.1f} min"


def duration(seconds: float) -> str:
    """Seconds in the unit that reads best: ``"45 s"``, ``"12.5 min"`` or ``"3.2 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
