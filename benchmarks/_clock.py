"""Wall, user and system time of a block of code, for the benchmarks' breakdowns."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


@contextlib.contextmanager
def cpu_times() -> Iterator[dict[str, float]]:
    """Yield a dict that gets ``wall``, ``user`` and ``system`` seconds when the block ends.

    System time shows what page faults and I/O cost, which wall time alone hides.
    """
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), os.times()
    try:
        yield out
    finally:
        end = os.times()
        out.update(
            wall=time.perf_counter() - wall,
            user=end.user - cpu.user,
            system=end.system - cpu.system,
        )
