"""The local server's webhook sender: after each placed call that carries a `webhook` tool, post
the call's outcome to that tool's URL the way a real sender would (late, at least once, in any
order, retried with backoff until answered 2xx).

Like `server`, it imports nothing from the rest of `dialer`: what the receiver must understand
is what arrives over HTTP. The payloads (documented in docs/local-server.md):

    {"event": "call.ended",    "callId": "...", "referenceId": "...", "status": "no-answer", "duration": 0}
    {"event": "call.analyzed", "callId": "...", "referenceId": "...", "status": "completed",
     "duration": 48, "analysis": {"sentiment": "positive"}, "extracted": {"budget": 420000}}

A completed call gets both (ended, then analyzed); any other status only the first.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_WEIGHTS: Mapping[str, float] = {"completed": 6, "no-answer": 2, "voicemail": 1, "busy": 1}
SENTIMENTS = ("positive", "neutral", "negative")
WORDS = ("yes", "no", "maybe", "later", "email me", "interested")


def parse_weights(text: str) -> dict[str, float]:
    """ "completed=6,no-answer=2" -> {"completed": 6.0, "no-answer": 2.0}; ValueError if malformed."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{part!r} is not STATUS=WEIGHT")
        weights[name.strip()] = float(value)
        if weights[name.strip()] < 0:
            raise ValueError(f"{part!r}: a weight cannot be negative")
    if not any(weights.values()):
        raise ValueError("at least one weight must be above 0")
    return weights


@dataclass(frozen=True)
class OutcomeSettings:
    call_seconds: float = 3.0  # a call lasts this long on average before its outcome is posted
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    duplicate_rate: float = 0.05  # share of payloads sent twice, and of two-payload calls reordered
    silent_rate: float = 0.0  # share of calls whose outcome is never posted at all
    attempts: int = 30  # a delivery is given up after this many failed posts
    backoff_s: float = 0.5  # first retry delay, doubled each time up to backoff_max_s
    backoff_max_s: float = 5.0


@dataclass
class Counters:
    scheduled: int = 0  # payloads due to be posted
    delivered: int = 0  # payloads answered 2xx (a duplicate counts twice)
    attempts: int = 0
    given_up: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "scheduled": self.scheduled,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "given_up": self.given_up,
        }


class OutcomeSender:
    def __init__(self, settings: OutcomeSettings, rng: random.Random) -> None:
        self.settings = settings
        self.counters = Counters()
        self._rng = rng
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def draw_status(self) -> str:
        names = list(self.settings.weights)
        return self._rng.choices(names, weights=[self.settings.weights[n] for n in names])[0]

    def schedule(self, body: Mapping[str, Any], call_id: str, status: str) -> bool:
        """Post this call's outcome later; False when the call has no webhook tool (or stays silent)."""
        tools = [t for t in body.get("tools", []) if isinstance(t, dict)]
        hook = next((t for t in tools if t.get("tool_type") == "webhook"), None)
        if hook is None or not isinstance(hook.get("args"), dict):
            return False
        if self._rng.random() < self.settings.silent_rate:
            return False
        payloads = self._payloads(body, tools, call_id, status)
        if len(payloads) == 2 and self._rng.random() < self.settings.duplicate_rate:
            payloads.reverse()
        sends = []
        for payload in payloads:
            sends.append(payload)
            if self._rng.random() < self.settings.duplicate_rate:
                sends.append(payload)
        delay = self.settings.call_seconds * self._rng.uniform(0.5, 1.5)
        for order, payload in enumerate(sends):
            self.counters.scheduled += 1
            task = asyncio.create_task(self._deliver(hook["args"], payload, delay + 0.05 * order))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def _payloads(
        self, body: Mapping[str, Any], tools: list[dict[str, Any]], call_id: str, status: str
    ) -> list[dict[str, Any]]:
        base = {"callId": call_id, "referenceId": body.get("referenceId"), "status": status}
        duration = self._rng.randint(20, 300) if status == "completed" else 0
        ended = {"event": "call.ended", **base, "duration": duration}
        if status != "completed":
            return [ended]
        analyzed: dict[str, Any] = {"event": "call.analyzed", **base, "duration": duration}
        if any(t.get("tool_type") == "sentiment" for t in tools):
            analyzed["analysis"] = {"sentiment": self._rng.choice(SENTIMENTS)}
        extracted = {}
        for tool in tools:
            if tool.get("tool_type") != "custom_field_extraction":
                continue
            for spec in (tool.get("args") or {}).get("fields", []):
                if isinstance(spec, dict) and isinstance(spec.get("fieldName"), str):
                    number = spec.get("fieldType") == "number"
                    value = self._rng.randint(1, 100) * 1000 if number else self._rng.choice(WORDS)
                    extracted[spec["fieldName"]] = value
        if extracted:
            analyzed["extracted"] = extracted
        return [ended, analyzed]

    async def _deliver(self, args: Mapping[str, Any], payload: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        url = str(args.get("webhook_url", ""))
        method = str(args.get("method", "POST")).upper()
        headers = {str(k): str(v) for k, v in (args.get("headers") or {}).items()}
        timeout = float(args.get("timeout", 30))
        wait = self.settings.backoff_s
        for _ in range(self.settings.attempts):
            self.counters.attempts += 1
            try:
                response = await self._http().request(
                    method, url, json=payload, headers=headers, timeout=timeout
                )
                if 200 <= response.status_code < 300:
                    self.counters.delivered += 1
                    return
            except httpx.HTTPError:
                pass  # the receiver is down or restarting: try again, as a real sender would
            await asyncio.sleep(wait * self._rng.uniform(0.8, 1.2))
            wait = min(wait * 2, self.settings.backoff_max_s)
        self.counters.given_up += 1

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=50)
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False, limits=limits)
        return self._client

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
