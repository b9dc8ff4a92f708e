"""What the engine is told (`DispatchOptions`, from [limits] and [api]) and what it tells back
(`DispatchReport`, and why it stopped: `StopReason`)."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dialer import logs

if TYPE_CHECKING:
    from dialer.config import Settings
    from dialer.lead_writes import Result


class StopReason(enum.Enum):
    LIMIT = "limit"  # --limit reached (exit 4)
    INTERRUPTED = "interrupted"  # SIGINT/SIGTERM (exit 4)
    RATE_LIMITED = "rate_limited"  # the server keeps refusing (exit 4)
    CHECKPOINT = "checkpoint"  # the checkpoint cannot be written (exit 4)
    API = "api"  # a fatal API answer or the circuit breaker (exit 3)


@dataclass(frozen=True)
class DispatchOptions:
    max_concurrency: int = 10
    max_attempts: int = 5
    retry_ambiguous: bool = False
    max_retry_after_s: float = 120.0
    max_consecutive_429: int = 20
    breaker_window: int = 50
    breaker_ratio: float = 0.8
    max_consecutive_unknown: int = 10
    limit: int | None = None
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    account: str = ""  # "organization_id 'o', agent_id 'a'", for messages about a 404

    @classmethod
    def of(cls, settings: Settings, *, limit: int | None) -> DispatchOptions:
        limits = settings.limits
        return cls(
            account=logs.redact(
                f"organization_id '{settings.api.organization_id}', agent_id '{settings.campaign.agent_id}'"
            ),
            max_concurrency=limits.max_concurrency,
            max_attempts=limits.max_attempts,
            retry_ambiguous=settings.api.retry_ambiguous,
            max_retry_after_s=limits.max_retry_after_s,
            max_consecutive_429=limits.max_consecutive_429,
            breaker_window=limits.breaker_window,
            breaker_ratio=limits.breaker_ratio,
            limit=limit,
        )


@dataclass(frozen=True)
class Unrecorded:
    row: int
    result: Result


@dataclass
class DispatchReport:
    sent: int = 0  # HTTP attempts made
    leads: int = 0  # leads that got a final outcome this run
    outcomes: Counter[str] = field(default_factory=Counter)
    stop_reason: StopReason | None = None
    stop_message: str = ""
    started: float = 0.0
    finished: float = 0.0
    outside_hours: int = 0
    first_send: float = 0.0
    last_send: float = 0.0
    # answers the checkpoint could not take (its disk full, say): kept here, written if it can
    unrecorded: list[Unrecorded] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.finished - self.started)

    @property
    def calls_per_second(self) -> float:
        """Sends per second between the first and the last send: the pace the API saw."""
        span = self.last_send - self.first_send
        return (self.sent - 1) / span if self.sent > 1 and span > 0 else 0.0
