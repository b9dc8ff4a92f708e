"""Run one command and print its wall time, CPU time and peak RSS as JSON (stdlib only).

bench.py starts every measured command through this small launcher because Linux carries a
process's peak RSS across fork and exec: a child forked straight from bench.py (which holds
polars and the lead lists) would report bench.py's own peak as its `ru_maxrss`. Forked from
this launcher, the floor is the launcher's few MiB instead.

    python benchmarks/measure.py --timeout 60 --stdout OUT --stderr ERR -- python -m dialer ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--stdout", required=True)
    parser.add_argument("--stderr", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    killed = threading.Event()
    reaped = threading.Event()
    with open(args.stdout, "wb") as out, open(args.stderr, "wb") as err:  # noqa: PTH123
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err)

        def kill_on_timeout() -> None:
            if not reaped.is_set():
                killed.set()
                proc.kill()

        timer = threading.Timer(args.timeout, kill_on_timeout)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            reaped.set()
            timer.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    report = {
        "returncode": proc.returncode,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,
        "timed_out": killed.is_set(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
