"""The floor the dialer is compared with: prepared placeCall bodies sent by a bare httpx loop.

No checkpoint, no pacing, no retries, no results file: N workers share one AsyncClient and
post the JSON bodies of a file (one per line) as fast as the server answers. Run as its own
process by bench.py, so its CPU time and peak RSS are measured exactly like the dialer's.
`--transport dialer` puts the dialer's own transport under the AsyncClient instead of httpx's
default one, to tell the dialer's bookkeeping apart from its HTTP stack.

    KYZO_API_KEY=... python benchmarks/bare_loop.py BASE_URL ORG AGENT BODIES.jsonl --workers 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import httpx


def dialer_transport(workers: int) -> httpx.AsyncBaseTransport:
    """The transport `dialer run` uses (dialer.client), for the same pool size."""
    from dialer.client import AiohttpTransport

    return AiohttpTransport(max_connections=workers)


async def send_all(
    base_url: str, path: str, bodies: list[bytes], workers: int, transport: str
) -> dict[str, object]:
    statuses: Counter[str] = Counter()
    source = iter(bodies)
    headers = {"x-api-key": os.environ["KYZO_API_KEY"], "content-type": "application/json"}
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)

    async with httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        limits=limits,
        timeout=30.0,
        trust_env=False,
        transport=dialer_transport(workers) if transport == "dialer" else None,
    ) as client:

        async def worker() -> None:
            for body in source:  # the iterator is shared: each body is taken by one worker
                try:
                    response = await client.post(path, content=body)
                    statuses[str(response.status_code)] += 1
                except httpx.TransportError as exc:
                    statuses[type(exc).__name__] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - started
    return {"sent": sum(statuses.values()), "statuses": dict(statuses), "send_seconds": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("organization_id")
    parser.add_argument("agent_id")
    parser.add_argument("bodies", type=Path, help="one JSON body per line")
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--transport", choices=("httpx", "dialer"), default="httpx")
    args = parser.parse_args()
    bodies = [line for line in args.bodies.read_bytes().splitlines() if line.strip()]
    path = f"/organizations/{args.organization_id}/agents/{args.agent_id}/placeCall"
    report = asyncio.run(send_all(args.base_url.rstrip("/"), path, bodies, args.workers, args.transport))
    print(json.dumps(report))
    return 0 if report["statuses"] == {"200": len(bodies)} else 1


if __name__ == "__main__":
    sys.exit(main())
