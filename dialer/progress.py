"""The progress bar: a tqdm bar on a TTY, nothing otherwise, so callers never branch on it."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any


class Progress:
    RATE_WINDOW_S = 10.0  # "current calls per second": the last ten seconds, not the whole run

    def __init__(
        self,
        total: int,
        enabled: bool,
        stream: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bar: Any = None
        self._counts: dict[str, int] = {}
        self._clock = clock
        self._started = clock()
        self._recent: deque[float] = deque()
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="lead", file=stream or sys.stderr, dynamic_ncols=True)

    def advance(self, status: str) -> None:
        if self._bar is None:
            return
        self._counts[status] = self._counts.get(status, 0) + 1
        self._bar.update(1)
        now = self._clock()
        self._recent.append(now)
        while now - self._recent[0] > self.RATE_WINDOW_S:
            self._recent.popleft()
        span = max(1e-9, min(self.RATE_WINDOW_S, now - self._started))
        self._bar.set_postfix(
            placed=self._counts.get("placed", 0),
            failed=self._counts.get("failed", 0),
            cps=f"{len(self._recent) / span:.1f}",
            refresh=False,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
