"""Mark every dialable lead of a campaign as placed, straight through the library (no HTTP).

bench.py runs this as a child process to build the checkpoint that `dialer run` then resumes
from with nothing left to send. Prints one JSON object: how many leads and how long each step took.

    python benchmarks/seed_checkpoint.py CONFIG [--batch 50000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dialer.checkpoint import Checkpoint
from dialer.config import load_settings
from dialer.fingerprints import file_fingerprint
from dialer.lead_state import Status
from dialer.lead_writes import Claim, Result
from dialer.leads import KEY, PHONE
from dialer.run_checkpoint import identity_of
from dialer.selection import load_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--batch", type=int, default=50_000)
    args = parser.parse_args()

    started = time.perf_counter()
    settings = load_settings(args.config)
    table = load_table(settings)
    dialable = table.dialable().select(KEY, PHONE)
    loaded = time.perf_counter()

    checkpoint = Checkpoint.open(settings.checkpoint_path)
    try:
        checkpoint.bind_identity(identity_of(settings))
        run_id = checkpoint.start_run(
            "benchmarks/seed_checkpoint.py", settings.fingerprint, file_fingerprint(settings.leads_path)
        )
        pending = frozenset({Status.PENDING})
        done = 0
        for batch in dialable.iter_slices(args.batch):
            keys = batch[KEY].to_list()
            phones = batch[PHONE].to_list()
            checkpoint.claim_now(
                [Claim(key, phone, None) for key, phone in zip(keys, phones, strict=True)], run_id, pending
            )
            checkpoint.record_now(
                [Result(key, Status.PLACED, 1, call_id=f"seed-{done + n:07d}") for n, key in enumerate(keys)]
            )
            done += len(keys)
        counts = checkpoint.counts()
        checkpoint.end_run(run_id, 0, counts)
    finally:
        checkpoint.close()
    finished = time.perf_counter()
    report = {
        "rows": table.rows,
        "seeded": done,
        "counts": counts,
        "load_table_s": round(loaded - started, 3),
        "write_s": round(finished - loaded, 3),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
