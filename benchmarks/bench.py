"""Speed and memory of `dialer`, measured against the local Kyzo server: `make bench`.

Every dialer command runs as its own child process (`python -m dialer --log-level warning ...`),
timed from outside; its CPU time and peak RSS come from `os.wait4`. The server runs in another
process, started fresh for each measured run, so the client's CPU is measured alone. Each figure
is shown next to a ratio whose two sides were measured in this same run, so that the verdicts
hold on a slower or faster machine.

Scenarios (the numbers are the issue's):
  overhead    20,000 leads, latency 0, unlimited rate, 10 in flight: dialer vs a bare httpx loop
  pacing      6,000 leads at 100 calls/s, 20 in flight, 50 ms latency: rate and 1 s windows
  latency     5,000 leads, 200 ms latency, 50 in flight, unlimited rate: vs 50 / 0.2 s = 250/s
  big_list    1,000,000 leads (2% bad numbers, 1% duplicates): validate, dry run, resume, export
  scale       100,000 vs 20,000 leads, latency 0, unlimited, 20 in flight: calls/s and peak RSS
  outcomes    100,000 outcome payloads posted at 500/s to `dialer collect`, a burst, then export
  instant     --help, and status/run/export of a finished 100,000-lead campaign, vs python -c pass
              and read_csv; a 1,000-lead run at 200 ms latency, 50 in flight, vs 250/s

Work files go to benchmarks/work/ (emptied at the start); figures to benchmarks/results.json.
Progress goes to stderr, the table to stdout. Exit 0 when every scenario ran, even if a target
was missed (the table says which); 1 when a scenario could not run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from dialer.server import max_in_window

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from campaign_builder import campaign_tables, write_campaign

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
RESULTS = HERE / "results.json"
PYTHON = sys.executable
API_KEY = "bench-key-3c9e41d7a0"
OUTCOMES_TOKEN = "bench-outcomes-token-5e2b9c81"
ORG, AGENT, FROM_NUMBER = "org_demo", "agent_demo", "pn_demo"
UNLIMITED = 10000  # limits.calls_per_second: the documented maximum, i.e. no pacing
URL = "{server-url}"  # in a command line: replaced by the fresh server's base URL

AREA_CODES = {
    "415": "San Francisco",
    "212": "New York",
    "312": "Chicago",
    "617": "Boston",
    "206": "Seattle",
    "512": "Austin",
    "303": "Denver",
    "305": "Miami",
    "202": "Washington",
    "213": "Los Angeles",
    "310": "Los Angeles",
    "404": "Atlanta",
    "602": "Phoenix",
    "702": "Las Vegas",
    "713": "Houston",
    "214": "Dallas",
    "469": "Dallas",
    "646": "New York",
    "718": "New York",
    "917": "New York",
}
FIRST_NAMES = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Maria",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
]
# Numbers a dialer must refuse: too short, impossible, or not numbers at all.
BAD_NUMBERS = ("12345", "555-000", "+1 555", "415-555", "(000) 000-0000", "0000000000", "n/a")
EXCHANGES = 790  # 200..989
PHONE_SPACE = len(AREA_CODES) * EXCHANGES * 10_000
PHONE_STRIDE = (
    97_654_321  # coprime with PHONE_SPACE (2^7 * 5^6 * 79): i -> i * stride mod space is one-to-one
)

T0 = time.perf_counter()


def progress(message: str) -> None:
    print(f"[bench {time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- lead lists


@dataclass(frozen=True)
class LeadList:
    frame: pl.DataFrame
    rows: int
    bad: int
    duplicates: int

    @property
    def dialable(self) -> int:
        return self.rows - self.bad - self.duplicates


def generate_leads(rows: int, *, bad_share: float = 0.0, dup_share: float = 0.0, seed: int = 7) -> LeadList:
    """A realistic lead list, built column-wise (no Python loop over rows).

    Good numbers are distinct by construction (a stride permutation of the number space), so the
    only duplicates are the planted ones, which reuse an earlier good row's number, often
    written another way. Written forms: mostly E.164, some `(415) 555-0132`, `415.555.0132`,
    `1-415-555-0132`, `415-555-0132`.
    """
    base = pl.DataFrame({"i": pl.int_range(0, rows, dtype=pl.Int64, eager=True)})
    frame = base.with_columns(
        (pl.col("i").hash(seed) % 1_000_000).cast(pl.Int64).alias("r1"),
        (pl.col("i").hash(seed + 1) // 256).cast(pl.Int64).alias("r2"),
        ((pl.col("i") * PHONE_STRIDE + 12_345) % PHONE_SPACE).alias("n"),
    )
    bad_cut = round(bad_share * 1_000_000)
    dup_cut = bad_cut + round(dup_share * 1_000_000)
    frame = frame.with_columns(
        (pl.col("r1") < bad_cut).alias("bad"),
        ((pl.col("r1") >= bad_cut) & (pl.col("r1") < dup_cut)).alias("dup"),
    )
    plain = ~pl.col("bad") & ~pl.col("dup")
    frame = frame.with_columns(plain.cast(pl.Int64).cum_sum().shift(1, fill_value=0).alias("plain_before"))
    # A duplicate before any plain row has nothing to copy: it stays a plain row.
    frame = frame.with_columns(pl.col("dup") & (pl.col("plain_before") > 0))
    plain_positions = frame.filter(~pl.col("bad") & ~pl.col("dup"))["i"]
    pick = frame.select(
        pl.when(pl.col("dup")).then(pl.col("r2") % pl.col("plain_before")).otherwise(0)
    ).to_series()
    frame = frame.with_columns(
        pl.when(pl.col("dup")).then(plain_positions.gather(pick)).otherwise(pl.col("i")).alias("source")
    )
    number = frame["n"].gather(frame["source"])
    areas = pl.Series(list(AREA_CODES))
    cities = pl.Series(list(AREA_CODES.values()))
    area_index = number // (EXCHANGES * 10_000)
    frame = frame.with_columns(
        areas.gather(area_index).alias("area"),
        cities.gather(area_index).alias("city"),
        (200 + (number // 10_000) % EXCHANGES).cast(pl.String).alias("exchange"),
        (number % 10_000).cast(pl.String).str.zfill(4).alias("line"),
        (pl.col("r2") % 20).alias("form"),
    )
    a, e, n = pl.col("area"), pl.col("exchange"), pl.col("line")
    written = (
        pl.when(pl.col("form") < 12)
        .then(pl.format("+1{}{}{}", a, e, n))
        .when(pl.col("form") < 16)
        .then(pl.format("({}) {}-{}", a, e, n))
        .when(pl.col("form") < 18)
        .then(pl.format("{}.{}.{}", a, e, n))
        .when(pl.col("form") < 19)
        .then(pl.format("1-{}-{}-{}", a, e, n))
        .otherwise(pl.format("{}-{}-{}", a, e, n))
    )
    bad_values = pl.Series(BAD_NUMBERS).gather(frame["r2"] % len(BAD_NUMBERS))
    first = pl.Series(FIRST_NAMES).gather(frame["r2"] % len(FIRST_NAMES))
    last = pl.Series(LAST_NAMES).gather((frame["r2"] // 31) % len(LAST_NAMES))
    frame = frame.with_columns(
        pl.format("CRM-{}", pl.col("i").cast(pl.String).str.zfill(7)).alias("crm_id"),
        first.alias("first_name"),
        last.alias("last_name"),
        pl.when(pl.col("bad")).then(bad_values).otherwise(written).alias("phone"),
    ).with_columns(
        pl.format(
            "{}.{}{}@example.com",
            pl.col("first_name").str.to_lowercase(),
            pl.col("last_name").str.to_lowercase(),
            pl.col("i"),
        ).alias("email")
    )
    bad = int(frame["bad"].sum())
    duplicates = int(frame["dup"].sum())
    leads = frame.select("crm_id", "first_name", "last_name", "city", "phone", "email")
    return LeadList(leads, rows, bad, duplicates)


def write_config(
    folder: Path,
    base_url: str,
    leads: Path,
    limits: Mapping[str, Any],
    file_name: str = "campaign.toml",
    **tables: Mapping[str, Any],
) -> Path:
    """The tests' standard campaign (tests/campaign_builder.py); every output inside `folder`."""
    document = campaign_tables(
        base_url=base_url,
        leads=leads,
        folder=folder,
        name=f"bench-{folder.name}",
        organization_id=ORG,
        agent_id=AGENT,
        from_phone_number_id=FROM_NUMBER,
        limits={
            "calls_per_second": UNLIMITED,
            "max_concurrency": 10,
            "max_attempts": 3,
            "request_timeout_s": 30,
            **limits,
        },
        **tables,
    )
    document["tools"][1]["args"]["campaignName"] = "Bench"
    return write_campaign(folder / file_name, document)


def scenario_folder(name: str) -> Path:
    folder = WORK / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- processes


@dataclass
class Child:
    """One finished child process, measured from outside."""

    args: list[str]
    returncode: int
    wall_s: float
    cpu_s: float  # ru_utime + ru_stime
    maxrss_kib: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def rss_mib(self) -> float:
        return self.maxrss_kib / 1024

    def tail(self) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-3:])[:500]


def child_env(base_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KYZO_")}
    env["KYZO_API_KEY"] = API_KEY
    env["KYZO_OUTCOMES_TOKEN"] = OUTCOMES_TOKEN
    if base_url:
        env["KYZO_BASE_URL"] = base_url
    return env


def run_child(args: Sequence[str], *, name: str, timeout_s: float, base_url: str | None = None) -> Child:
    """Run to completion through measure.py: wall time around it, CPU and peak RSS from os.wait4."""
    out_path, err_path = WORK / f"{name}.stdout", WORK / f"{name}.stderr"
    launcher = [PYTHON, str(HERE / "measure.py"), "--timeout", str(timeout_s)]
    launcher += ["--stdout", str(out_path), "--stderr", str(err_path), "--", *args]
    done = subprocess.run(
        launcher,
        check=False,
        env=child_env(base_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measure.py failed: {done.stderr.strip()[-500:]}")
    report = json.loads(done.stdout)
    return Child(
        args=list(args),
        returncode=report["returncode"],
        wall_s=report["wall_s"],
        cpu_s=report["cpu_s"],
        maxrss_kib=report["maxrss_kib"],
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        timed_out=report["timed_out"],
    )


def dialer(*args: str) -> list[str]:
    return [PYTHON, "-m", "dialer", "--log-level", "warning", *args]


def check_child(child: Child, what: str, ok_codes: Sequence[int] = (0,)) -> None:
    if child.timed_out:
        raise RuntimeError(f"{what}: killed after the time limit ({child.wall_s:.0f} s)")
    if child.returncode not in ok_codes:
        raise RuntimeError(f"{what}: exit {child.returncode}: {child.tail()}")


def _cpu_ticks(pid: int) -> float | None:
    """utime + stime of a live process, in seconds (Linux /proc); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """`python -m dialer mock-server --port 0` in its own process, with a ledger."""

    def __init__(self, name: str, *, latency_ms: float) -> None:
        self.name = name
        self.latency_ms = latency_ms
        self.ledger = WORK / f"{name}.ledger.jsonl"
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.cpu_s: float | None = None

    def start(self) -> Server:
        self.ledger.unlink(missing_ok=True)
        args = [
            *[PYTHON, "-m", "dialer", "mock-server", "--port", "0", "--api-key", API_KEY],
            *["--latency-ms", str(self.latency_ms), "--ledger", str(self.ledger)],
            *["--organization-id", ORG, "--agent-id", AGENT, "--phone-number-id", FROM_NUMBER],
        ]
        stderr = (WORK / f"{self.name}.server.stderr").open("w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)
        stderr.close()
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if not selector.select(timeout=deadline - time.monotonic()):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    break
                if match := re.search(r"listening on (\S+)", line):
                    self.url = match.group(1)
                    return self
        self.stop()
        raise RuntimeError(f"the local Kyzo server did not start (see {WORK / self.name}.server.stderr)")

    def cpu_now(self) -> float | None:
        return _cpu_ticks(self.proc.pid) if self.proc else None

    def metrics(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_mock/metrics", timeout=60, trust_env=False)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 15
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_s = usage.ru_utime + usage.ru_stime
                break
            if time.monotonic() > deadline:
                proc.kill()
                deadline = float("inf")
            time.sleep(0.05)
        if proc.stdout:
            proc.stdout.close()


@contextmanager
def server(name: str, *, latency_ms: float = 0) -> Iterator[Server]:
    running = Server(name, latency_ms=latency_ms).start()
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Measured:
    """A client process run against a fresh server, with what the server saw."""

    child: Child
    metrics: dict[str, Any]
    ledger: dict[str, Any]
    server_cpu_s: float | None

    @property
    def placed(self) -> int:
        return int(self.metrics["placed"])

    @property
    def e2e_rate(self) -> float:
        """Placed calls per second of the whole process: start-up, load, send, results files."""
        return self.placed / self.child.wall_s

    @property
    def cpu_us_per_call(self) -> float:
        return 1e6 * self.child.cpu_s / max(1, self.placed)

    @property
    def server_busy(self) -> float | None:
        """Share of one core the server used while the client ran (1.0 = saturated)."""
        return None if self.server_cpu_s is None else self.server_cpu_s / self.child.wall_s


def against_server(
    name: str, args: Sequence[str], *, latency_ms: float, timeout_s: float, ok_codes: Sequence[int] = (0,)
) -> Measured:
    with server(name, latency_ms=latency_ms) as srv:
        before = srv.cpu_now()
        args = [srv.url if a == URL else a for a in args]
        child = run_child(args, name=name, timeout_s=timeout_s, base_url=srv.url)
        after = srv.cpu_now()
        metrics = srv.metrics()
    check_child(child, name, ok_codes)
    busy = None if before is None or after is None else after - before
    return Measured(child, metrics, read_ledger(srv.ledger), busy)


def read_ledger(path: Path) -> dict[str, Any]:
    """Placed-call times (server admission, wall clock) and repeats, from the ledger."""
    stamps: list[float] = []
    phones: Counter[str] = Counter()
    if path.exists():
        with path.open() as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    stamps.append(float(record["ts"]))
                    phones[record["phoneNumber"]] += 1
    stamps.sort()
    count = len(stamps)
    span = stamps[-1] - stamps[0] if count > 1 else 0.0
    return {
        "placed": count,
        "span_s": span,
        # n stamps mark n - 1 intervals: (n - 1) / span is the rate, without the end-point bias
        "rate": (count - 1) / span if span > 0 else 0.0,
        "max_in_1s": max_in_window(stamps, 1.0),
        "median_gap_s": statistics.median(b - a for a, b in itertools.pairwise(stamps))
        if count > 1
        else None,
        "phones_called_twice": sum(1 for n in phones.values() if n > 1),
    }


def full_seconds_rate(per_second: Mapping[str, int]) -> float | None:
    """Mean of the server's accepted_per_second, leaving out the first and last (partial) second."""
    counts = [per_second[k] for k in sorted(per_second, key=int)][1:-1]
    return sum(counts) / len(counts) if counts else None


# ---------------------------------------------------------------- figures


@dataclass
class Figure:
    scenario: str
    figure: str
    value: float | None
    unit: str = ""
    ratio: float | None = None
    ratio_of: str = ""  # what the ratio divides by, measured in this run
    target: str = ""
    ok: bool | None = None  # None: reported, no target


@dataclass
class Scenario:
    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def add(self, figure: str, value: float | None, unit: str = "", **kw: Any) -> Figure:
        item = Figure(self.name, figure, value, unit, **kw)
        self.figures.append(item)
        return item


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def child_facts(child: Child) -> dict[str, Any]:
    return {
        "command": " ".join(Path(a).name if a == PYTHON else a for a in child.args),
        "exit_code": child.returncode,
        "wall_s": round(child.wall_s, 3),
        "cpu_s": round(child.cpu_s, 3),
        "peak_rss_mib": round(child.rss_mib, 1),
        "stdout_tail": child.stdout.strip().splitlines()[-6:],
    }


def measured_facts(run: Measured) -> dict[str, Any]:
    facts = child_facts(run.child)
    facts.update(
        placed=run.placed,
        requests=run.metrics["requests"],
        status_counts=run.metrics["status_counts"],
        e2e_calls_per_s=round(run.e2e_rate, 1),
        send_phase_calls_per_s=round(run.ledger["rate"], 1),
        cpu_us_per_call=round(run.cpu_us_per_call, 1),
        server_busy_share=None if run.server_busy is None else round(run.server_busy, 3),
        ledger_max_in_1s=run.ledger["max_in_1s"],
        server_max_in_1s=run.metrics["max_accepted_in_any_1s_window"],
        phones_called_twice=run.ledger["phones_called_twice"],
    )
    return facts


def check_every_lead_once(run: Measured, expected: int, what: str) -> None:
    if run.placed != expected or run.metrics["requests"] != expected:
        raise RuntimeError(
            f"{what}: expected {expected} calls placed, the server saw {run.metrics['requests']} "
            f"requests and placed {run.placed} ({run.metrics['status_counts']})"
        )
    if run.ledger["phones_called_twice"]:
        raise RuntimeError(f"{what}: {run.ledger['phones_called_twice']} numbers were called twice")


# ---------------------------------------------------------------- scenarios


def prepare_list(folder: Path, leads: LeadList, rows: int) -> Path:
    path = folder / "leads.csv"
    leads.frame.head(rows).write_csv(path)
    return path


def write_bodies(config: Path, out: Path) -> int:
    """The exact placeCall bodies the dialer builds for this campaign, one JSON per line."""
    from dialer.config import load_settings
    from dialer.request_bodies import RequestSpec, iter_requests
    from dialer.selection import load_table

    settings = load_settings(config, env={})
    table = load_table(settings)
    spec = RequestSpec.build(settings, table.input_columns)
    count = 0
    with out.open("w", encoding="utf-8") as handle:
        for lead in iter_requests(table.dialable(), spec):
            handle.write(json.dumps(lead.body) + "\n")
            count += 1
    return count


def scenario_overhead(s: Scenario, network: LeadList) -> None:
    rows, workers = 20_000, 10
    folder = scenario_folder(s.name)
    leads = prepare_list(folder, network, rows)
    config = write_config(folder, "http://127.0.0.1:9", leads, {"max_concurrency": workers})
    bodies = folder / "bodies.jsonl"
    if write_bodies(config, bodies) != rows:
        raise RuntimeError("the prepared bodies do not match the lead count")

    def bare_loop(transport: str) -> Measured:
        args = [PYTHON, str(HERE / "bare_loop.py"), URL, ORG, AGENT, str(bodies)]
        args += ["--workers", str(workers), "--transport", transport]
        run = against_server(f"{s.name}-bare-{transport}", args, latency_ms=0, timeout_s=240)
        check_every_lead_once(run, rows, f"bare loop ({transport})")
        return run

    progress(f"{s.name}: bare httpx loop, {rows:,} posts, {workers} workers")
    bare = bare_loop("httpx")
    progress(f"{s.name}: dialer run, {rows:,} leads, max_concurrency {workers}")
    run = against_server(
        f"{s.name}-dialer", dialer("run", str(config), "--no-progress"), latency_ms=0, timeout_s=240
    )
    check_every_lead_once(run, rows, "dialer run")
    s.details.update(bare=measured_facts(bare), dialer=measured_facts(run))
    # Informational: the same bare loop over the dialer's own transport (dialer.client), so the
    # dialer's bookkeeping can be told apart from its HTTP stack. Its failure hides nothing else.
    progress(f"{s.name}: bare loop over the dialer's transport (informational)")
    try:
        own: Measured | None = bare_loop("dialer")
    except Exception as exc:
        own = None
        s.details["bare_dialer_transport_error"] = f"{type(exc).__name__}: {exc}"
    else:
        s.details["bare_dialer_transport"] = measured_facts(own)

    s.add("bare loop calls/s (whole process)", bare.e2e_rate, "/s", ratio=1.0, ratio_of="reference")
    s.add(
        "dialer calls/s (whole process)",
        run.e2e_rate,
        "/s",
        ratio=ratio(run.e2e_rate, bare.e2e_rate),
        ratio_of="dialer/bare",
        target=">= 0.70x bare",
        ok=run.e2e_rate >= 0.7 * bare.e2e_rate,
    )
    s.add(
        "dialer calls/s (send phase, ledger)",
        run.ledger["rate"],
        "/s",
        ratio=ratio(run.ledger["rate"], bare.ledger["rate"]),
        ratio_of="dialer/bare send phase",
    )
    s.add("bare loop client CPU per call", bare.cpu_us_per_call, "us", ratio=1.0, ratio_of="reference")
    s.add(
        "dialer client CPU per call",
        run.cpu_us_per_call,
        "us",
        ratio=ratio(run.cpu_us_per_call, bare.cpu_us_per_call),
        ratio_of="dialer/bare",
    )
    if own is not None:
        s.add(
            "bare loop, dialer's transport: calls/s",
            own.e2e_rate,
            "/s",
            ratio=ratio(run.e2e_rate, own.e2e_rate),
            ratio_of="dialer/this",
        )
        s.add(
            "bare loop, dialer's transport: CPU per call",
            own.cpu_us_per_call,
            "us",
            ratio=ratio(run.cpu_us_per_call, own.cpu_us_per_call),
            ratio_of="dialer/this",
        )
    s.add(
        "server busy while dialer ran",
        run.server_busy,
        "core",
        ratio=ratio(run.server_busy, bare.server_busy),
        ratio_of="dialer/bare",
    )
    s.add(
        "dialer peak RSS",
        run.child.rss_mib,
        "MiB",
        ratio=ratio(run.child.rss_mib, bare.child.rss_mib),
        ratio_of="dialer/bare",
    )


def scenario_pacing(s: Scenario, network: LeadList) -> None:
    rows, rate, workers, latency = 6_000, 100, 20, 50
    folder = scenario_folder(s.name)
    leads = prepare_list(folder, network, rows)
    config = write_config(
        folder, "http://127.0.0.1:9", leads, {"calls_per_second": rate, "max_concurrency": workers}
    )
    progress(f"{s.name}: dialer run, {rows:,} leads at {rate}/s (about {rows / rate:.0f} s)")
    run = against_server(
        s.name, dialer("run", str(config), "--no-progress"), latency_ms=latency, timeout_s=rows / rate + 60
    )
    check_every_lead_once(run, rows, "dialer run")
    achieved = run.ledger["rate"]
    per_second = full_seconds_rate(run.metrics["accepted_per_second"])
    s.details.update(
        dialer=measured_facts(run),
        achieved_from="ledger: (placed - 1) / (last ts - first ts)",
        server_full_seconds_mean=per_second,
    )
    s.add(
        "achieved rate (ledger (n-1)/span)",
        achieved,
        "/s",
        ratio=achieved / rate,
        ratio_of=f"/ configured {rate}",
        target=">= 0.98x configured",
        ok=achieved >= 0.98 * rate,
    )
    s.add(
        "achieved rate (server, mean of full seconds)",
        per_second,
        "/s",
        ratio=ratio(per_second, rate),
        ratio_of=f"/ configured {rate}",
    )
    worst = int(run.metrics["max_accepted_in_any_1s_window"])
    s.add(
        "most calls in any 1 s window (server)",
        worst,
        "calls",
        ratio=worst / rate,
        ratio_of=f"/ configured {rate}",
        target="<= 101",
        ok=worst <= 101,
    )
    gap = run.ledger["median_gap_s"]
    s.add(
        "median gap between placed calls (ledger)",
        None if gap is None else gap * 1000,
        "ms",
        ratio=ratio(gap, 1 / rate),
        ratio_of=f"/ 1/{rate} s",
    )
    s.add("dialer client CPU per call", run.cpu_us_per_call, "us", ratio=None)


def scenario_latency(s: Scenario, network: LeadList) -> None:
    rows, workers, latency = 5_000, 50, 200
    ideal = workers / (latency / 1000)
    folder = scenario_folder(s.name)
    leads = prepare_list(folder, network, rows)
    config = write_config(folder, "http://127.0.0.1:9", leads, {"max_concurrency": workers})
    progress(f"{s.name}: dialer run, {rows:,} leads, {latency} ms latency, {workers} in flight")
    run = against_server(
        s.name, dialer("run", str(config), "--no-progress"), latency_ms=latency, timeout_s=120
    )
    check_every_lead_once(run, rows, "dialer run")
    achieved = run.ledger["rate"]
    s.details.update(dialer=measured_facts(run), ideal_calls_per_s=ideal)
    s.add(
        "achieved rate (ledger (n-1)/span)",
        achieved,
        "/s",
        ratio=achieved / ideal,
        ratio_of=f"/ {workers}/{latency / 1000:g} s = {ideal:.0f}",
        target=">= 0.90x",
        ok=achieved >= 0.9 * ideal,
    )
    s.add(
        "calls/s (whole process)", run.e2e_rate, "/s", ratio=run.e2e_rate / ideal, ratio_of=f"/ {ideal:.0f}"
    )


def scenario_big_list(s: Scenario, network: LeadList) -> None:
    rows = 1_000_000
    folder = scenario_folder(s.name)
    progress(f"{s.name}: generating {rows:,} leads (2% bad numbers, 1% duplicates)")
    started = time.perf_counter()
    big = generate_leads(rows, bad_share=0.02, dup_share=0.01, seed=11)
    leads = folder / "leads.csv"
    big.frame.write_csv(leads)
    big = LeadList(big.frame.clear(), big.rows, big.bad, big.duplicates)  # free the rows
    s.details.update(
        generate_s=round(time.perf_counter() - started, 2),
        csv_mib=round(leads.stat().st_size / 2**20, 1),
        rows=rows,
        bad=big.bad,
        duplicates=big.duplicates,
        dialable=big.dialable,
    )

    progress(f"{s.name}: baseline, polars.read_csv of the same file in a child process")
    read = run_child(
        [
            PYTHON,
            "-c",
            "import sys, polars as pl; print(pl.read_csv(sys.argv[1], infer_schema=False).height)",
            str(leads),
        ],
        name=f"{s.name}-read-csv",
        timeout_s=120,
    )
    check_child(read, "polars.read_csv baseline")
    s.details["read_csv"] = child_facts(read)
    s.add("baseline: polars read_csv time", read.wall_s, "s", ratio=1.0, ratio_of="reference")
    s.add("baseline: polars read_csv peak RSS", read.rss_mib, "MiB", ratio=1.0, ratio_of="reference")

    with server(s.name) as srv:
        config = write_config(folder, srv.url, leads, {"max_concurrency": 20})

        def timed(
            label: str, what: str, child: Child, target_s: float | None, target_rss: float | None
        ) -> None:
            """`target_rss`: the most peak RSS may be, as a multiple of read_csv's (issue 15)."""
            s.details[label] = child_facts(child)
            s.add(
                f"{what} time",
                child.wall_s,
                "s",
                ratio=ratio(child.wall_s, read.wall_s),
                ratio_of="/ read_csv",
                target=f"< {target_s:g} s" if target_s else "",
                ok=child.wall_s < target_s if target_s else None,
            )
            rss_ratio = ratio(child.rss_mib, read.rss_mib)
            s.add(
                f"{what} peak RSS",
                child.rss_mib,
                "MiB",
                ratio=rss_ratio,
                ratio_of="/ read_csv",
                target=f"<= {target_rss:g}x read_csv" if target_rss else "",
                ok=rss_ratio is not None and rss_ratio <= target_rss if target_rss else None,
            )

        progress(f"{s.name}: (a) dialer validate --offline --json")
        validate = run_child(
            dialer("validate", str(config), "--offline", "--json"), name=f"{s.name}-validate", timeout_s=150
        )
        check_child(validate, "validate", ok_codes=(0, 2))
        report = json.loads(validate.stdout)
        counted = (
            report["rows"],
            report["dialable"],
            sum(report["rejected"].values()),
            sum(report["skipped"].values()),
        )
        wanted = (rows, big.dialable, big.bad, big.duplicates)
        s.details["validate_counts"] = {"rows_dialable_rejected_skipped": counted, "generated": wanted}
        timed("validate", "(a) validate --offline", validate, 3, 2.0)
        s.add(
            "(a) validate counts = generated",
            None,
            f"{counted[1]:,} dialable, {counted[2]:,} rejected, {counted[3]:,} skipped",
            target="equal",
            ok=counted == wanted,
        )

        progress(f"{s.name}: (b) dialer run --dry-run")
        dry = run_child(
            dialer("run", str(config), "--dry-run", "--no-progress"), name=f"{s.name}-dry-run", timeout_s=180
        )
        check_child(dry, "run --dry-run", ok_codes=(0, 1, 4))
        timed("dry_run", "(b) run --dry-run", dry, 6, 2.5)

        progress(f"{s.name}: building a checkpoint with every dialable lead placed (library, child process)")
        seed = run_child(
            [PYTHON, str(HERE / "seed_checkpoint.py"), str(config)], name=f"{s.name}-seed", timeout_s=240
        )
        check_child(seed, "seed_checkpoint.py")
        seeded = json.loads(seed.stdout)
        s.details["seed_checkpoint"] = {**child_facts(seed), **seeded}
        if seeded["seeded"] != big.dialable:
            raise RuntimeError(f"seeded {seeded['seeded']} leads, expected {big.dialable}")

        progress(f"{s.name}: (c) dialer run, resuming a checkpoint where every lead is done")
        before = srv.metrics()["requests"]
        resume = run_child(
            dialer("run", str(config), "--no-progress"),
            name=f"{s.name}-resume",
            timeout_s=180,
            base_url=srv.url,
        )
        sent = srv.metrics()["requests"] - before
        # exit 1: the planted bad numbers are `rejected`, which the dialer reports as incomplete
        check_child(resume, "run (resume)", ok_codes=(0, 1))
        timed("resume", "(c) run, all done (resume)", resume, 10, None)
        s.add("(c) requests sent on resume", sent, "requests", target="== 0", ok=sent == 0)

        progress(f"{s.name}: (d) dialer export")
        export = run_child(dialer("export", str(config)), name=f"{s.name}-export", timeout_s=180)
        check_child(export, "export")
        timed("export", "(d) export", export, 4, 2.5)
        results = pl.scan_csv(folder / "results.csv", infer_schema=False)
        placed = results.filter(pl.col("dialer_status") == "placed").select(pl.len()).collect().item()
        s.details["export_placed"] = placed
        s.add(
            "(d) export: placed rows = seeded",
            placed,
            "rows",
            target=f"== {big.dialable:,}",
            ok=placed == big.dialable,
        )

        progress(f"{s.name}: (e) dialer report")
        page = folder / "report.html"
        report_run = run_child(
            dialer("report", str(config), "--output", str(page)), name=f"{s.name}-report", timeout_s=180
        )
        check_child(report_run, "report")
        timed("report", "(e) report", report_run, 10, 4.0)
        size_mib = page.stat().st_size / (1024 * 1024)
        s.add("(e) report file size", size_mib, "MiB", target="< 2 MiB", ok=size_mib < 2)


def scenario_scale(s: Scenario, network: LeadList) -> None:
    workers = 20
    sizes = (20_000, 100_000)
    runs: dict[int, Measured] = {}
    tables: dict[int, Child] = {}
    for rows in sizes:
        folder = scenario_folder(f"{s.name}-{rows // 1000}k")
        leads = prepare_list(folder, network, rows)
        config = write_config(folder, "http://127.0.0.1:9", leads, {"max_concurrency": workers})
        progress(f"{s.name}: dialer run, {rows:,} leads, latency 0, unlimited, max_concurrency {workers}")
        run = against_server(
            f"{s.name}-{rows // 1000}k",
            dialer("run", str(config), "--no-progress"),
            latency_ms=0,
            timeout_s=60 + rows / 150,
        )
        check_every_lead_once(run, rows, f"dialer run ({rows:,})")
        runs[rows] = run
        progress(f"{s.name}: lead table alone (validate --offline), {rows:,} leads")
        table = run_child(
            dialer("validate", str(config), "--offline", "--json"),
            name=f"{s.name}-{rows // 1000}k-validate",
            timeout_s=120,
        )
        check_child(table, "validate", ok_codes=(0, 2))
        tables[rows] = table
        s.details[f"run_{rows}"] = measured_facts(run)
        s.details[f"validate_{rows}"] = child_facts(table)
    small, large = runs[sizes[0]], runs[sizes[1]]
    s.add(
        f"calls/s, {sizes[0]:,} leads (whole process)", small.e2e_rate, "/s", ratio=1.0, ratio_of="reference"
    )
    s.add(
        f"calls/s, {sizes[1]:,} leads (whole process)",
        large.e2e_rate,
        "/s",
        ratio=ratio(large.e2e_rate, small.e2e_rate),
        ratio_of="/ 20k",
    )
    s.add(
        f"calls/s, {sizes[1]:,} leads (send phase, ledger)",
        large.ledger["rate"],
        "/s",
        ratio=ratio(large.ledger["rate"], small.ledger["rate"]),
        ratio_of="/ 20k",
    )
    s.add(f"peak RSS, {sizes[0]:,} leads", small.child.rss_mib, "MiB", ratio=1.0, ratio_of="reference")
    s.add(
        f"peak RSS, {sizes[1]:,} leads",
        large.child.rss_mib,
        "MiB",
        ratio=ratio(large.child.rss_mib, small.child.rss_mib),
        ratio_of="RSS(100k)/RSS(20k)",
    )
    folder = scenario_folder(f"{s.name}-{sizes[1] // 1000}k")
    progress(f"{s.name}: the run-end report's share, as `dialer report` on the {sizes[1]:,}-lead campaign")
    page = run_child(
        dialer("report", str(folder / "campaign.toml"), "--output", str(folder / "again.html")),
        name=f"{s.name}-report",
        timeout_s=120,
    )
    check_child(page, "report")
    s.details["report_100k"] = child_facts(page)
    share = ratio(page.wall_s, large.child.wall_s)
    s.add(
        f"report of {sizes[1]:,} leads, vs the run",
        page.wall_s,
        "s",
        ratio=share,
        ratio_of="/ the whole run (which includes one)",
        target="< 0.05x",
        ok=share is not None and share < 0.05,
    )
    growth = large.child.rss_mib - small.child.rss_mib
    table_growth = tables[sizes[1]].rss_mib - tables[sizes[0]].rss_mib
    s.details.update(rss_growth_mib=round(growth, 1), validate_rss_growth_mib=round(table_growth, 1))
    s.add(
        "RSS growth 20k->100k",
        growth,
        "MiB",
        ratio=ratio(growth, table_growth),
        ratio_of="/ growth of validate (lead table alone)",
        target="<= 1.5x table growth",
        ok=table_growth > 0 and growth <= 1.5 * table_growth,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scenario_outcomes(s: Scenario, network: LeadList) -> None:
    """100,000 outcomes posted at 500/s to `dialer collect`, then the export that reads them."""
    rows, rate, burst = 100_000, 500, 20_000
    folder = scenario_folder(s.name)
    leads = prepare_list(folder, network, rows)
    port = free_port()
    outcomes = {
        "public_url": f"http://127.0.0.1:{port}/kyzo/outcomes",
        "listen": f"127.0.0.1:{port}",
        "token": "${env:KYZO_OUTCOMES_TOKEN}",
        "fields": {"duration_s": "duration", "sentiment": "analysis.sentiment", "budget": "extracted.budget"},
    }
    plain = write_config(folder, "http://127.0.0.1:9", leads, {})
    with_outcomes = write_config(folder, "http://127.0.0.1:9", leads, {}, "outcomes.toml", outcomes=outcomes)
    progress(f"{s.name}: seeding a checkpoint with {rows:,} placed calls")
    seed = run_child(
        [PYTHON, str(HERE / "seed_checkpoint.py"), str(plain)], name=f"{s.name}-seed", timeout_s=240
    )
    check_child(seed, "seed_checkpoint.py")
    progress(f"{s.name}: export without outcomes (the reference)")
    baseline = run_child(dialer("export", str(plain)), name=f"{s.name}-export-plain", timeout_s=120)
    check_child(baseline, "export (no outcomes)")

    progress(f"{s.name}: dialer collect, {rows:,} payloads posted at {rate}/s (about {rows // rate} s)")
    collect = subprocess.Popen(
        dialer("collect", str(with_outcomes)),
        env=child_env(None),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=(WORK / f"{s.name}-collect.stderr").open("w"),
        text=True,
    )
    try:
        ready = collect.stdout.readline() if collect.stdout else ""
        if "collecting outcomes on" not in ready:
            raise RuntimeError(f"dialer collect did not start: {ready!r}")
        url = outcomes["public_url"]
        cpu_before = _cpu_ticks(collect.pid)
        paced = run_child(
            [PYTHON, str(HERE / "post_outcomes.py"), "--url", url, "--count", str(rows), "--rate", str(rate),
             "--concurrency", "64"],
            name=f"{s.name}-post-paced",
            timeout_s=rows / rate + 120,
        )  # fmt: skip
        cpu_after = _cpu_ticks(collect.pid)
        check_child(paced, "post_outcomes.py (paced)")
        progress(f"{s.name}: {burst:,} more as fast as the receiver answers")
        fast = run_child(
            [PYTHON, str(HERE / "post_outcomes.py"), "--url", url, "--count", str(burst), "--event",
             "call.analyzed", "--concurrency", "64"],
            name=f"{s.name}-post-burst",
            timeout_s=300,
        )  # fmt: skip
        check_child(fast, "post_outcomes.py (burst)")
    finally:
        collect.send_signal(signal.SIGTERM)
        collect_code = collect.wait(timeout=60)
    stored = sqlite3.connect(folder / "checkpoint.db").execute("SELECT count(*) FROM payloads").fetchone()[0]
    paced_stats, fast_stats = json.loads(paced.stdout), json.loads(fast.stdout)
    progress(f"{s.name}: export with {rows:,} outcomes")
    exported = run_child(dialer("export", str(with_outcomes)), name=f"{s.name}-export", timeout_s=300)
    check_child(exported, "export (with outcomes)")
    results = pl.read_csv(folder / "results.csv", infer_schema=False, columns=["outcome_status"])
    with_status = results.height - results["outcome_status"].null_count()
    s.details.update(
        paced=paced_stats,
        burst=fast_stats,
        collect_exit_code=collect_code,
        stored=stored,
        export=child_facts(exported),
        export_plain=child_facts(baseline),
        rows_with_outcome=with_status,
    )
    sent = rows + burst
    s.add(
        f"stored of {sent:,} posted (answered 200: {paced_stats['ok'] + fast_stats['ok']:,})",
        stored,
        "payloads",
        ratio=ratio(stored, sent),
        ratio_of="/ posted",
        target="== posted, collect exits 0",
        ok=stored == sent and collect_code == 0,
    )
    s.add(
        f"paced posts answered, target {rate}/s",
        paced_stats["rate_per_s"],
        "/s",
        ratio=ratio(paced_stats["rate_per_s"], rate),
        ratio_of=f"/ {rate}/s",
        target=">= 0.98x",
        ok=(ratio(paced_stats["rate_per_s"], rate) or 0) >= 0.98,
    )
    s.add(f"answer latency p99 at {rate}/s", paced_stats["latency_p99_ms"], "ms")
    busy = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / paced.wall_s
    s.add(f"receiver CPU at {rate}/s", busy, "core")
    s.add(
        "receiver throughput, as fast as answered (64 in flight)",
        fast_stats["rate_per_s"],
        "/s",
        ratio=ratio(fast_stats["rate_per_s"], rate),
        ratio_of=f"/ {rate}/s",
    )
    s.add("export with outcomes: time", exported.wall_s, "s", ratio=ratio(exported.wall_s, baseline.wall_s),
          ratio_of="/ export without [outcomes]")  # fmt: skip
    s.add(
        "export with outcomes: peak RSS",
        exported.rss_mib,
        "MiB",
        ratio=ratio(exported.rss_mib, baseline.rss_mib),
        ratio_of="/ export without [outcomes]",
    )
    s.add(
        "rows with an outcome_status",
        with_status,
        "rows",
        target=f"== {rows:,}",
        ok=with_status == rows,
    )


def median_child(args: Sequence[str], *, name: str, repeats: int, base_url: str | None = None) -> Child:
    """The run with the median wall time of `repeats` (short commands are noisy one by one)."""
    children = [run_child(args, name=f"{name}-{n}", timeout_s=120, base_url=base_url) for n in range(repeats)]
    for child in children:
        check_child(child, name, ok_codes=(0, 1))
    return sorted(children, key=lambda c: c.wall_s)[len(children) // 2]


def scenario_instant(s: Scenario, network: LeadList) -> None:
    """Issue 15's fixed costs: whole processes as cron starts them, each beside its reference."""
    folder = scenario_folder(s.name)
    repeats = 5
    progress(f"{s.name}: python -c pass and dialer --help, median of {repeats}")
    bare = median_child([PYTHON, "-c", "pass"], name=f"{s.name}-python", repeats=repeats)
    helped = median_child(dialer("--help"), name=f"{s.name}-help", repeats=repeats)
    s.details.update(python=child_facts(bare), help=child_facts(helped))
    s.add("reference: python -c pass", bare.wall_s, "s", ratio=1.0, ratio_of="reference")

    def add_time(what: str, child: Child, reference: Child, of: str, target_s: float) -> None:
        s.add(
            what,
            child.wall_s,
            "s",
            ratio=ratio(child.wall_s, reference.wall_s),
            ratio_of=of,
            target=f"< {target_s:g} s",
            ok=child.wall_s < target_s,
        )

    add_time("dialer --help", helped, bare, "/ python -c pass", 0.3)

    rows = 100_000
    campaign = folder / "finished"
    campaign.mkdir()
    leads = campaign / "leads.csv"
    generate_leads(rows, bad_share=0.02, dup_share=0.01, seed=13).frame.write_csv(leads)
    read = median_child(
        [PYTHON, "-c", "import sys, polars as pl; pl.read_csv(sys.argv[1], infer_schema=False)", str(leads)],
        name=f"{s.name}-read-csv",
        repeats=3,
    )
    s.add("reference: polars read_csv, 100k leads", read.wall_s, "s", ratio=1.0, ratio_of="reference")
    with server(f"{s.name}-finished") as srv:
        config = write_config(campaign, srv.url, leads, {"max_concurrency": 20})
        progress(f"{s.name}: a finished {rows:,}-lead campaign (seeded, then one run to end it)")
        seed = run_child(
            [PYTHON, str(HERE / "seed_checkpoint.py"), str(config)], name=f"{s.name}-seed", timeout_s=120
        )
        check_child(seed, "seed_checkpoint.py")
        ended = run_child(
            dialer("run", str(config), "--no-progress"), name=f"{s.name}-end", timeout_s=120, base_url=srv.url
        )
        check_child(ended, "run (ending the seeded campaign)", ok_codes=(0, 1))
        before = srv.metrics()["requests"]
        progress(f"{s.name}: status, run and export of the finished campaign, median of 3")
        status = median_child(dialer("status", str(config)), name=f"{s.name}-status", repeats=3)
        resumed = median_child(
            dialer("run", str(config), "--no-progress"), name=f"{s.name}-run", repeats=3, base_url=srv.url
        )
        exported = median_child(dialer("export", str(config)), name=f"{s.name}-export", repeats=3)
        sent = srv.metrics()["requests"] - before
    s.details.update(status=child_facts(status), run=child_facts(resumed), export=child_facts(exported))
    add_time("status, finished 100k campaign", status, read, "/ read_csv", 0.6)
    add_time("run, finished 100k campaign (nothing to send)", resumed, read, "/ read_csv", 1.0)
    add_time("export, finished 100k campaign", exported, read, "/ read_csv", 1.5)
    s.add("requests sent by run/status/export", sent, "requests", target="== 0", ok=sent == 0)

    workers, latency, small = 50, 200, 1_000
    ideal = workers / (latency / 1000)
    progress(
        f"{s.name}: dialer run, {small:,} leads, {latency} ms latency, {workers} in flight, 3 fresh runs"
    )
    rates: list[Measured] = []
    bares: list[Measured] = []
    for n in range(3):  # each fresh run beside the bare loop posting the same bodies
        run_folder = scenario_folder(f"{s.name}/small-{n}")
        small_leads = prepare_list(run_folder, network, small)
        small_config = write_config(
            run_folder, "http://127.0.0.1:9", small_leads, {"max_concurrency": workers}
        )
        bodies = run_folder / "bodies.jsonl"
        if write_bodies(small_config, bodies) != small:
            raise RuntimeError("the prepared bodies do not match the lead count")
        bare_args = [PYTHON, str(HERE / "bare_loop.py"), URL, ORG, AGENT, str(bodies)]
        bare = against_server(
            f"{s.name}-small-bare-{n}",
            [*bare_args, "--workers", str(workers), "--transport", "dialer"],
            latency_ms=latency,
            timeout_s=120,
        )
        check_every_lead_once(bare, small, "bare loop (1,000 leads)")
        bares.append(bare)
        run = against_server(
            f"{s.name}-small-{n}",
            dialer("run", str(small_config), "--no-progress"),
            latency_ms=latency,
            timeout_s=120,
        )
        check_every_lead_once(run, small, "dialer run (1,000 leads)")
        rates.append(run)
    middle = sorted(rates, key=lambda r: r.e2e_rate)[1]
    bare_middle = sorted(bares, key=lambda r: r.e2e_rate)[1]
    s.details.update(small_run=measured_facts(middle), small_bare=measured_facts(bare_middle))
    of_ideal = f"/ {workers}/{latency / 1000:g} s = {ideal:.0f}"
    s.add(
        "1,000-lead bare loop (dialer's transport): calls/s (whole process)",
        bare_middle.e2e_rate,
        "/s",
        ratio=bare_middle.e2e_rate / ideal,
        ratio_of=of_ideal,
    )
    s.add(
        "1,000-lead run, 200 ms, c=50: calls/s (whole process)",
        middle.e2e_rate,
        "/s",
        ratio=middle.e2e_rate / ideal,
        ratio_of=of_ideal,
        target=">= 0.90x",
        ok=middle.e2e_rate >= 0.9 * ideal,
    )
    s.add(
        "1,000-lead run vs the bare loop (whole process)",
        middle.e2e_rate,
        "/s",
        ratio=ratio(middle.e2e_rate, bare_middle.e2e_rate),
        ratio_of="dialer/bare",
    )


SCENARIOS: dict[str, tuple[str, Callable[[Scenario, LeadList], None]]] = {
    "overhead": ("1. Overhead vs bare httpx loop", scenario_overhead),
    "pacing": ("2. Pacing at 100 calls/s", scenario_pacing),
    "latency": ("3. Latency-bound, 50 in flight", scenario_latency),
    "big_list": ("4. Big list, 1,000,000 leads", scenario_big_list),
    "scale": ("5. Throughput at scale", scenario_scale),
    "outcomes": ("6. Outcomes: 100,000 received at 500/s, then exported", scenario_outcomes),
    "instant": ("7. Instant commands: the fixed cost of every start", scenario_instant),
}


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    versions = {}
    for package in (
        "polars",
        "httpx",
        "httpcore",
        "aiohttp",
        "uvicorn",
        "starlette",
        "phonenumbers",
        "kyzo-dialer",
    ):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        except OSError:
            return ""
        return done.stdout.strip()

    return {
        # the code measured: the commit, and the files that differ from it (others edit as we run)
        "git_commit": git("rev-parse", "HEAD"),
        "git_changed": git("status", "--porcelain", "--", "dialer", "pyproject.toml").splitlines(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": versions,
    }


def fmt_value(item: Figure) -> str:
    if item.value is None:
        return item.unit or "-"
    value = item.value
    text = f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.2f}"
    return f"{text} {item.unit}".strip()


def fmt_ratio(item: Figure) -> str:
    if item.ratio is None:
        return ""
    return f"{item.ratio:.2f}x {item.ratio_of}".strip()


def table(scenarios: Sequence[Scenario]) -> str:
    header = ("scenario", "figure", "value", "ratio", "target", "ok")
    lines: list[tuple[str, ...]] = []
    for sc in scenarios:
        if sc.error:
            lines.append((sc.name, "ERROR", sc.error[:100], "", "", "ERROR"))
        for item in sc.figures:
            ok = "" if item.ok is None else ("yes" if item.ok else "NO")
            lines.append((sc.name, item.figure, fmt_value(item), fmt_ratio(item), item.target, ok))
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), rule]
    previous = None
    for row in lines:
        if previous is not None and row[0] != previous:
            out.append("")
        previous = row[0]
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description="Speed and memory figures of kyzo-dialer.")
    parser.add_argument(
        "--only", action="append", choices=list(SCENARIOS), help="run only these (repeatable)"
    )
    args = parser.parse_args()
    chosen = args.only or list(SCENARIOS)

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    progress(f"work files in {WORK}; scenarios: {', '.join(chosen)}")
    progress("generating the 100,000-lead list the network scenarios share")
    network = generate_leads(100_000, seed=7)

    done: list[Scenario] = []
    for name in chosen:
        title, body = SCENARIOS[name]
        scenario = Scenario(name, title)
        began = time.perf_counter()
        progress(f"== {title}")
        # others may share this machine: the load before each scenario says how quiet it was
        scenario.details["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
        try:
            body(scenario, network)
        except Exception as exc:
            scenario.error = f"{type(exc).__name__}: {exc}"
            scenario.details["traceback"] = traceback.format_exc()
            progress(f"{name}: ERROR {scenario.error}")
        scenario.seconds = round(time.perf_counter() - began, 1)
        progress(f"{name}: finished in {scenario.seconds:.1f} s")
        done.append(scenario)

    total = time.perf_counter() - T0
    payload = {
        "started_at": started_at,
        "total_seconds": round(total, 1),
        "machine": machine(),
        "scenarios": {
            sc.name: {
                "title": sc.title,
                "seconds": sc.seconds,
                "error": sc.error,
                "all_targets_met": sc.error is None and all(f.ok is not False for f in sc.figures),
                "figures": [asdict(f) for f in sc.figures],
                "details": sc.details,
            }
            for sc in done
        },
    }
    RESULTS.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(table(done))
    print(f"\ntotal {total:.0f} s; figures in {RESULTS.relative_to(ROOT)}")
    return 1 if any(sc.error for sc in done) else 0


if __name__ == "__main__":
    sys.exit(main())
