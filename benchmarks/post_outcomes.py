"""Post N outcome payloads to a running `dialer collect`, at a set rate or as fast as it takes them.

The load side of the outcomes benchmark: one payload per seeded call (`seed-0000000`, ...), the
way Kyzo's webhook tool would post them, with the bearer token from the environment. Prints one
JSON object: how many were answered 200, the rate achieved and the answer latencies.

    python benchmarks/post_outcomes.py --url http://127.0.0.1:8788/kyzo/outcomes --count 100000 --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time

import aiohttp

STATUSES = ("completed", "completed", "completed", "no-answer", "voicemail", "busy")
SENTIMENTS = ("positive", "neutral", "negative")


def payload(index: int, rng: random.Random, event: str) -> dict[str, object]:
    status = rng.choice(STATUSES)
    body: dict[str, object] = {
        "event": event,
        "callId": f"seed-{index:07d}",
        "status": status,
        "duration": rng.randint(20, 300) if status == "completed" else 0,
    }
    if status == "completed":
        body["analysis"] = {"sentiment": rng.choice(SENTIMENTS)}
        body["extracted"] = {"budget": rng.randint(1, 100) * 1000}
    return body


async def post_all(
    url: str, token: str, count: int, offset: int, rate: float, concurrency: int, event: str
) -> dict[str, object]:
    rng = random.Random(offset)
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    answers: dict[str, int] = {}
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=concurrency * 4)
    started = time.perf_counter()

    # aiohttp, as the dialer's own transport: the load side must not be the bottleneck
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as client:

        async def worker() -> None:
            while (index := await queue.get()) is not None:
                sent = time.perf_counter()
                try:
                    async with client.post(url, json=payload(index, rng, event), headers=headers) as response:
                        await response.read()
                        key = str(response.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    key = type(exc).__name__
                latencies.append(time.perf_counter() - sent)
                answers[key] = answers.get(key, 0) + 1

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        for n in range(count):
            if rate > 0:  # a paced sender: the n-th post leaves at n / rate, never in a burst
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await queue.put(offset + n)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "count": count,
        "ok": answers.get("200", 0),
        "answers": answers,
        "wall_s": round(wall, 3),
        "rate_per_s": round(count / wall, 1) if wall else None,
        "latency_p50_ms": round(statistics.median(ordered) * 1000, 2) if ordered else None,
        "latency_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2) if ordered else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--offset", type=int, default=0, help="first seeded call number")
    parser.add_argument("--rate", type=float, default=0.0, help="posts per second; 0: as fast as answered")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--event", default="call.ended")
    args = parser.parse_args()
    token = os.environ["KYZO_OUTCOMES_TOKEN"]
    stats = asyncio.run(
        post_all(args.url, token, args.count, args.offset, args.rate, args.concurrency, args.event)
    )
    print(json.dumps(stats))
    return 0 if stats["ok"] == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
