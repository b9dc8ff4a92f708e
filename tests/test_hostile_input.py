"""Hostile and broken input: exit 2, one clear message naming the culprit, nothing written, nothing sent.

And the other side of the line: odd but valid data (control characters, emoji, a huge phone
cell) is accepted and sent as it is. Property-based tests feed random lead files and configs.
"""

from __future__ import annotations

import copy
import json
import random
import re
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import KyzoServer
from helpers import (
    json_logs,
    lead_rows,
    read_results,
    run_cli,
    valid_numbers,
    write_config,
    write_leads,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dialer.checkpoint import Checkpoint, Identity

HEADER = "crm_id,first_name,city,phone,email"
OUTPUTS = ("results.csv", "errors.csv", "checkpoint.db", "checkpoint.db.lock")


def assert_refused(
    result: Any,
    folder: Path,
    server: KyzoServer | None,
    *needles: str,
    not_written: tuple[str, ...] = OUTPUTS,
) -> str:
    """Exit 2, one error message containing every needle, no traceback, no output file, no request."""
    output = result.stdout + result.stderr
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert result.stdout == ""
    [event] = json_logs(result.stderr)
    assert event["event"] == "error"
    assert event["exit_code"] == 2
    message: str = event["message"]
    for needle in needles:
        assert needle in message
    for name in not_written:
        assert not (folder / name).exists(), name
    if server is not None:
        assert server.metrics()["requests"] == 0
        assert server.calls() == []
    return message


def _config(folder: Path, server: KyzoServer, leads: Path | None = None, **kwargs: Any) -> Path:
    leads = leads or write_leads(folder / "leads.csv", lead_rows(3))
    return write_config(folder, server.base_url, leads, **kwargs)


def _edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"this is = = not [toml", "not valid TOML"),
        (b"[api]\nbase_url = 'http://127.0.0.1:9'\n[api]\n", "not valid TOML"),
        (b"\xff\xfe[\x00a\x00p\x00i\x00]\x00", "not UTF-8"),
        (b'{"api": {"base_url": "http://127.0.0.1:9"}}', "not valid TOML"),
    ],
    ids=["garbage", "duplicate-table", "utf16", "json"],
)
def test_config_that_is_not_toml(kyzo: KyzoServer, tmp_path: Path, content: bytes, needle: str) -> None:
    """A config that is not TOML (or not UTF-8) is exit 2 naming the file."""
    config = _config(tmp_path, kyzo)
    config.write_bytes(content)

    message = assert_refused(run_cli(["run", str(config)]), tmp_path, kyzo, str(config), needle)
    assert "has 1 problem" in message


def test_config_file_missing_or_a_folder(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A config path that does not exist or is a folder is exit 2 naming it."""
    missing = tmp_path / "nope.toml"
    assert_refused(run_cli(["run", str(missing)]), tmp_path, kyzo, str(missing), "cannot read the file")
    assert_refused(run_cli(["run", str(tmp_path)]), tmp_path, kyzo, str(tmp_path), "cannot read the file")


def test_empty_config_names_every_missing_table(kyzo: KyzoServer, tmp_path: Path) -> None:
    """An empty config reports each missing required table, all at once."""
    config = tmp_path / "campaign.toml"
    config.write_text("")

    message = assert_refused(run_cli(["run", str(config)]), tmp_path, kyzo, "has 3 problems")
    for key in ("api", "campaign", "leads"):
        assert f"- {key}: required key is missing" in message


@pytest.mark.parametrize(
    ("limits", "extra", "needle"),
    [
        ({"calls_per_secnd": 3}, "", "limits.calls_per_secnd: unknown key (did you mean calls_per_second?)"),
        ({"max_concurency": 3}, "", "limits.max_concurency: unknown key (did you mean max_concurrency?)"),
        ({}, "[limts]\ncalls_per_second = 3\n", "limts: unknown key (did you mean limits?)"),
        ({}, 'resuts = "x.csv"\n', "output.resuts: unknown key"),
    ],
)
def test_unknown_key_is_named_with_a_hint(
    kyzo: KyzoServer, tmp_path: Path, limits: dict[str, Any], extra: str, needle: str
) -> None:
    """An unknown key is exit 2 naming its dotted path, with a did-you-mean hint."""
    config = _config(tmp_path, kyzo, limits=limits, extra=extra)

    assert_refused(run_cli(["run", str(config)]), tmp_path, kyzo, str(config), needle)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_concurrency", "ten"),
        ("max_concurrency", 2.5),
        ("calls_per_second", True),
        ("calls_per_second", "5"),
        ("max_attempts", [3]),
        ("request_timeout_s", "30s"),
    ],
)
def test_wrong_type_is_named(kyzo: KyzoServer, tmp_path: Path, key: str, value: Any) -> None:
    """A value of the wrong type is exit 2 naming its key."""
    config = _config(tmp_path, kyzo, limits={key: value})

    message = assert_refused(run_cli(["run", str(config)]), tmp_path, kyzo, str(config), f"limits.{key}: ")
    assert "has 1 problem" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("calls_per_second", 0),
        ("calls_per_second", -1.5),
        ("max_concurrency", 0),
        ("max_concurrency", -4),
        ("max_attempts", 0),
        ("request_timeout_s", 0),
        ("request_timeout_s", -30),
        ("max_retry_after_s", 0),
        ("max_consecutive_429", -1),
        ("breaker_window", 0),
        ("breaker_ratio", 0),
    ],
)
def test_zero_or_negative_limit_is_refused(kyzo: KyzoServer, tmp_path: Path, key: str, value: float) -> None:
    """Every limit must be positive: zero or negative is exit 2 naming the key."""
    config = _config(tmp_path, kyzo, limits={key: value})

    assert_refused(
        run_cli(["run", str(config)]), tmp_path, kyzo, str(config), f"limits.{key}: ", "greater than"
    )


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("20000", "less than or equal to 10000"),
        ("10000.5", "less than or equal to 10000"),
        ("inf", "less than or equal to 10000"),
        ("nan", "Input should be"),  # pydantic words it as "less than or equal to 10000"
        ("-inf", "greater than 0"),
    ],
)
def test_rate_above_the_documented_maximum_is_refused(
    kyzo: KyzoServer, tmp_path: Path, value: str, needle: str
) -> None:
    """calls_per_second above 10000 (or not a finite number) is exit 2 naming the key and the bound."""
    config = _edit(_config(tmp_path, kyzo), "calls_per_second = 10000", f"calls_per_second = {value}")

    assert_refused(
        run_cli(["run", str(config)]), tmp_path, kyzo, str(config), "limits.calls_per_second: ", needle
    )


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        (["--calls-per-second", "20000"], "limits.calls_per_second"),
        (["--calls-per-second", "0"], "limits.calls_per_second"),
        (["--max-concurrency", "0"], "limits.max_concurrency"),
    ],
)
def test_bad_limit_on_the_command_line_is_refused(
    kyzo: KyzoServer, tmp_path: Path, flags: list[str], key: str
) -> None:
    """A limit given on the command line is checked like one in the file."""
    config = _config(tmp_path, kyzo)

    assert_refused(run_cli(["run", str(config), *flags]), tmp_path, kyzo, str(config), key)


def test_every_config_problem_is_reported_at_once(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Several mistakes in one file are all listed in one message."""
    config = _config(
        tmp_path, kyzo, limits={"max_concurrency": "ten", "calls_per_secnd": 2, "max_attempts": 0}
    )

    message = assert_refused(run_cli(["run", str(config)]), tmp_path, kyzo, str(config), "has 3 problems")
    for key in ("limits.max_concurrency", "limits.calls_per_secnd", "limits.max_attempts"):
        assert key in message


def test_template_naming_a_missing_column_is_refused(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A ${column} in tool args that the list lacks is exit 2 naming it, before any call."""
    config = _edit(
        _config(tmp_path, kyzo), 'customerName = "${first_name}"', 'customerName = "${frist_name}"'
    )

    assert_refused(
        run_cli(["run", str(config)]), tmp_path, kyzo, str(config), "'${frist_name}'", "first_name"
    )


# ---------------------------------------------------------------- lead files


def _binary() -> bytes:
    data = bytearray(random.Random(7).randbytes(8192))
    data[10] = 0
    return bytes(data)


def _long_then_sparse(path: Path, head: bytes) -> None:
    """A 2 GiB file without writing 2 GiB: `head`, then a hole (which reads as NUL bytes)."""
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(2 * 1024**3)


def _truncated_parquet(path: Path) -> None:
    write_leads(path, lead_rows(200))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _late_bad_byte(path: Path) -> None:
    rows = "".join(f"CRM-{i},Name{i},Town,+14155550132,a{i}@example.com\n" for i in range(3000))
    path.write_bytes(f"{HEADER}\n{rows}".encode() + b"CRM-x,Zo\xeb,Town,+14155550132,z@example.com\n")


LEAD_FILES: dict[str, tuple[str, Callable[[Path], object], str]] = {
    "empty": ("leads.csv", lambda p: p.write_bytes(b""), "the file is empty"),
    "blank-lines": ("leads.csv", lambda p: p.write_bytes(b"\n \r\n\t\n"), "the file is empty"),
    "header-only": ("leads.csv", lambda p: p.write_text(HEADER + "\n"), "has a header but no data rows"),
    "header-and-blank-rows": (
        "leads.csv",
        lambda p: p.write_text(HEADER + "\n,,,,\n\n, , ,,\n"),
        "has a header but no data rows",
    ),
    "binary": ("leads.csv", lambda p: p.write_bytes(_binary()), "is binary"),
    "sparse-2GiB-with-nuls": (
        "leads.csv",
        lambda p: _long_then_sparse(p, b"phone," + b"a" * 1000),
        "is binary",
    ),
    "sparse-2GiB-one-line": (
        "leads.csv",
        lambda p: _long_then_sparse(p, b"phone," + b"a" * (70 * 1024)),
        "the first line is longer than 1024 KiB",
    ),
    "3MB-first-line": (
        "leads.csv",
        lambda p: p.write_bytes(b"a" * (3 * 1024 * 1024)),
        "the first line is longer than 1024 KiB",
    ),
    "truncated-parquet": ("leads.parquet", _truncated_parquet, "is not a readable Parquet file"),
    "csv-named-parquet": (
        "leads.parquet",
        lambda p: p.write_text(HEADER + "\n1,a,b,c,d\n"),
        "not a readable Parquet",
    ),
    "empty-parquet": ("leads.parquet", lambda p: p.write_bytes(b""), "is not a readable Parquet file"),
    "latin-1": (
        "leads.csv",
        lambda p: p.write_bytes(f"{HEADER}\n".encode() + b"CRM-1,Zo\xeb,Town,+14155550132,z@example.com\n"),
        "is not UTF-8 text; set leads.encoding",
    ),
    "bad-byte-after-64KiB": ("leads.csv", _late_bad_byte, "is not UTF-8 text; set leads.encoding"),
    "empty-column-name": (
        "leads.csv",
        lambda p: p.write_text("crm_id,first_name,,city,phone,email\n1,a,x,b,+14155550132,e@x.io\n"),
        "column 3 of the header has an empty name",
    ),
    "blank-column-name": (
        "leads.csv",
        lambda p: p.write_text(HEADER + ",  \n1,a,b,+14155550132,e@x.io,x\n"),
        "column 6 of the header has an empty name",
    ),
    "empty-column-name-parquet": (
        "leads.parquet",
        lambda p: pl.DataFrame({**{k: [v] for k, v in lead_rows(1)[0].items()}, "": ["x"]}).write_parquet(p),
        "column 6 of the header has an empty name",
    ),
    "duplicated-column": (
        "leads.csv",
        lambda p: p.write_text(HEADER + ",phone\n1,a,b,+14155550132,e@x.io,+14155550133\n"),
        "the column name 'phone' appears twice in the header",
    ),
    "duplicated-after-trimming": (
        "leads.csv",
        lambda p: p.write_text(HEADER + ", city \n1,a,b,+14155550132,e@x.io,c\n"),
        "the column name 'city' appears twice in the header",
    ),
    "cr-only-line-ends": (
        "leads.csv",
        lambda p: p.write_text(
            HEADER + "\r1,a,b,+14155550132,e@x.io\r2,a,b,+14155550133,e@x.io\r", newline=""
        ),
        "lines end with a lone carriage return",
    ),
    "quoted-newline-header-duplicate": (
        "leads.csv",
        lambda p: p.write_text('"phone\n",' + HEADER + "\n1,1,a,b,+14155550132,e@x.io\n"),
        "the column name 'phone' appears twice in the header",
    ),
    "duplicate-after-quoted-newline": (
        "leads.csv",
        lambda p: p.write_text('"x\ny",' + HEADER + ",phone\n0,1,a,b,+14155550132,e@x.io,+14155550133\n"),
        "the column name 'phone' appears twice in the header",
    ),
    "unsupported-type": (
        "leads.xlsx",
        lambda p: p.write_bytes(b"PK\x03\x04"),
        "unsupported file type '.xlsx'",
    ),
    "a-folder": ("leads.csv", lambda p: p.mkdir(), "is a folder"),
    "missing": ("leads.csv", lambda p: None, "does not exist"),
    "list-column-parquet": (
        "leads.parquet",
        lambda p: pl.DataFrame([{**lead_rows(1)[0], "tags": ["a", "b"]}]).write_parquet(p),
        "column 'tags' (list) cannot be read as text; lead lists need flat columns (text, numbers, dates)",
    ),
    "struct-column-parquet": (
        "leads.parquet",
        lambda p: pl.DataFrame([{**lead_rows(1)[0], "address": {"city": "Springfield"}}]).write_parquet(p),
        "column 'address' (struct) cannot be read as text; lead lists need flat columns",
    ),
}


@pytest.mark.parametrize("command", [["run"], ["run", "--dry-run"], ["validate"]], ids=" ".join)
@pytest.mark.parametrize("case", LEAD_FILES)
def test_broken_lead_file_is_refused(kyzo: KyzoServer, tmp_path: Path, case: str, command: list[str]) -> None:
    """A broken lead file is exit 2 with one line naming the file, before anything is written or sent."""
    name, make, needle = LEAD_FILES[case]
    leads = tmp_path / name
    make(leads)
    config = _config(tmp_path, kyzo, leads)

    result = run_cli([command[0], str(config), *command[1:]])

    message = assert_refused(result, tmp_path, kyzo, str(leads), needle)
    assert "\n" not in message


def _denied_open(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Reading `path` fails with EACCES, as for a file without read permission (tests run as root)."""
    real_open = Path.open

    def denied(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)


DO_NOT_CALL_FILES: dict[str, tuple[str, Callable[[Path], object], str]] = {
    "a-folder": (
        "dnc.csv",
        lambda p: p.mkdir(),
        "is a folder, not a do-not-call list file; point leads.do_not_call at the file",
    ),
    "unreadable": (
        "dnc.csv",
        lambda p: p.write_text("phone\n+14155550132\n"),
        "the do-not-call list cannot be read (Permission denied); check the file's permissions or "
        "leads.do_not_call",
    ),
    "names-only": (
        "dnc.csv",
        lambda p: p.write_text("Name,Email\nAna,ana@example.com\n"),
        "the do-not-call list has no valid phone number: tried column 'Name'",
    ),
    "mostly-invalid": (
        "dnc.csv",
        lambda p: p.write_text("Name,Mobile\nAna,ask first\nBob,n/a\nCy,+14155550132\n"),
        "2 of 3 values in the do-not-call list are not valid phone numbers: tried column 'Mobile'",
    ),
}


@pytest.mark.parametrize("command", [["run"], ["validate", "--offline"]], ids=" ".join)
@pytest.mark.parametrize("case", DO_NOT_CALL_FILES)
def test_unusable_do_not_call_list_is_refused(
    kyzo: KyzoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, command: list[str]
) -> None:
    """A do-not-call list that cannot be read stops the run with exit 2 naming it; nothing is dialed."""
    name, make, needle = DO_NOT_CALL_FILES[case]
    dnc = tmp_path / name
    make(dnc)
    if case == "unreadable":
        _denied_open(monkeypatch, dnc)
    config = _edit(
        _config(tmp_path, kyzo), 'default_region = "US"', f'default_region = "US"\ndo_not_call = "{dnc}"'
    )

    result = run_cli([command[0], str(config), *command[1:]])

    # The run lock is taken before the list is read (and left behind); this test is about the list.
    written = ("results.csv", "errors.csv", "checkpoint.db")
    message = assert_refused(result, tmp_path, kyzo, f"{dnc}: ", needle, not_written=written)
    assert "\n" not in message


def test_sparse_file_is_never_read_whole(kyzo: KyzoServer, tmp_path: Path) -> None:
    """validate on a 2 GiB single-line file answers at once, as run does."""
    leads = tmp_path / "leads.csv"
    _long_then_sparse(leads, b"phone," + b"a" * (70 * 1024))
    config = _config(tmp_path, kyzo, leads)

    result = run_cli(["validate", str(config)])

    assert_refused(result, tmp_path, kyzo, "the first line is longer than 1024 KiB")


def test_unknown_encoding_is_named(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A leads.encoding Python does not know is exit 2 naming it."""
    config = _edit(
        _config(tmp_path, kyzo), 'default_region = "US"', 'default_region = "US"\nencoding = "klingon-8"'
    )

    assert_refused(run_cli(["run", str(config)]), tmp_path, kyzo, "unknown encoding 'klingon-8'")


# ---------------------------------------------------------------- outputs


def _outputs(config: Path, **paths: Path) -> Path:
    """Rewrite output.path / errors_path / checkpoint of a write_config campaign file."""
    defaults = {"path": "results.csv", "errors_path": "errors.csv", "checkpoint": "checkpoint.db"}
    for key, path in paths.items():
        _edit(config, f'{key} = "{config.parent / defaults[key]}"', f'{key} = "{path}"')
    return config


def test_output_folder_blocked_by_a_file(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A file where the output folder should be is exit 2 naming it."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    config = _outputs(_config(tmp_path, kyzo), path=blocker / "results.csv")

    assert_refused(run_cli(["run", str(config)]), tmp_path, kyzo, f"{blocker}: a file is in the way")
    assert blocker.read_text() == "not a folder"


def test_output_folder_below_a_file(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A file in the middle of an output folder path is exit 2 naming the folder."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    config = _outputs(_config(tmp_path, kyzo), checkpoint=blocker / "deeper" / "checkpoint.db")

    assert_refused(
        run_cli(["run", str(config)]),
        tmp_path,
        kyzo,
        f"{blocker / 'deeper'}: cannot create the output folder",
    )


@pytest.mark.parametrize("key", ["path", "errors_path", "checkpoint"])
def test_output_path_equal_to_the_input_is_refused(kyzo: KyzoServer, tmp_path: Path, key: str) -> None:
    """An output (results, errors or checkpoint) on the lead list itself is exit 2; the list is untouched."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    before = leads.read_bytes()
    config = _outputs(_config(tmp_path, kyzo, leads), **{key: leads})

    assert_refused(run_cli(["run", str(config)]), tmp_path, kyzo, "is the lead list itself")
    assert leads.read_bytes() == before


def test_output_path_reaching_the_input_another_way_is_refused(kyzo: KyzoServer, tmp_path: Path) -> None:
    """--output through a symlink, or spelt with ../, to the lead list is refused like the plain path."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    before = leads.read_bytes()
    config = _config(tmp_path, kyzo, leads)
    link = tmp_path / "link.csv"
    link.symlink_to(leads)
    (tmp_path / "sub").mkdir()

    for output in (link, tmp_path / "sub" / ".." / "leads.csv"):
        result = run_cli(["run", str(config), "--output", str(output)])
        assert_refused(result, tmp_path, kyzo, "is the lead list itself")
    assert leads.read_bytes() == before


def test_results_and_errors_on_the_same_path_are_refused(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Two outputs on one path is exit 2 naming it."""
    config = _outputs(_config(tmp_path, kyzo), errors_path=tmp_path / "results.csv")

    assert_refused(run_cli(["run", str(config)]), tmp_path, kyzo, "is used for two outputs")


def test_output_path_that_is_a_folder_is_refused(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A results path naming an existing folder is exit 2."""
    (tmp_path / "results.csv").mkdir()
    config = _config(tmp_path, kyzo)

    assert_refused(
        run_cli(["run", str(config)]),
        tmp_path,
        kyzo,
        "is a folder",
        not_written=("errors.csv", "checkpoint.db"),
    )


def _checkpoint_of(path: Path, identity: Identity) -> bytes:
    checkpoint = Checkpoint.open(path)
    checkpoint.bind_identity(identity)
    checkpoint.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("identity", "needle"),
    [
        (Identity("org_other", "agent_demo", "pn_demo", "phone"), "organization_id was 'org_other'"),
        (Identity("org_demo", "agent_demo", "pn_demo", "reference_id"), "dedupe was 'reference_id'"),
    ],
)
def test_checkpoint_of_another_campaign_is_refused_untouched(
    kyzo: KyzoServer, tmp_path: Path, identity: Identity, needle: str
) -> None:
    """A checkpoint recorded for another campaign is exit 2 and stays byte-identical."""
    config = _config(tmp_path, kyzo)
    checkpoint = tmp_path / "checkpoint.db"
    before = _checkpoint_of(checkpoint, identity)

    result = run_cli(["run", str(config)])

    assert_refused(
        result,
        tmp_path,
        kyzo,
        str(checkpoint),
        "belongs to a different campaign",
        needle,
        not_written=("results.csv", "errors.csv", "checkpoint.db-wal"),
    )
    assert checkpoint.read_bytes() == before


def _foreign_sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE leads (x)")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_foreign_sqlite, "SQLite file of another program"),
        (lambda p: p.write_bytes(b"lead list, not a checkpoint\n"), "not a SQLite file"),
    ],
    ids=["sqlite", "text"],
)
def test_checkpoint_of_another_program_is_refused_untouched(
    kyzo: KyzoServer, tmp_path: Path, make: Callable[[Path], None], needle: str
) -> None:
    """A checkpoint path holding another program's file is exit 2 and the file stays byte-identical."""
    config = _config(tmp_path, kyzo)
    checkpoint = tmp_path / "checkpoint.db"
    make(checkpoint)
    before = checkpoint.read_bytes()

    result = run_cli(["run", str(config)])

    assert_refused(result, tmp_path, kyzo, str(checkpoint), needle, not_written=("results.csv", "errors.csv"))
    assert checkpoint.read_bytes() == before


# ---------------------------------------------------------------- odd but valid data


ODD_VALUES = {
    "first_name": "😀 Zoë",
    "city": "tab\there\x07bell",
}


def test_control_characters_and_emoji_are_sent_as_they_are(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """Tabs, BEL and emoji in agentParams values are data: accepted and sent unchanged."""
    kyzo = start_server(ledger_bodies=True)
    rows = lead_rows(3)
    rows[0].update(ODD_VALUES)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = _config(tmp_path, kyzo, leads)

    check = run_cli(["validate", str(config), "--json", "--offline"])

    assert check.exit_code == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["first_request"]["agentParams"] == ODD_VALUES
    assert report["rejected"] == {}
    assert report["first_request"]["tools"][1]["args"]["customerName"] == ODD_VALUES["first_name"]

    result = run_cli(["run", str(config)])

    assert result.exit_code == 0, result.stdout + result.stderr
    assert len(kyzo.calls()) == 3
    [odd] = [c["body"] for c in kyzo.calls() if c["referenceId"] == rows[0]["crm_id"]]
    assert odd["agentParams"] == ODD_VALUES
    results = read_results(tmp_path / "results.csv")
    assert results["first_name"][0] == ODD_VALUES["first_name"]
    assert results["city"][0] == ODD_VALUES["city"]


def test_template_and_env_syntax_in_data_is_never_expanded(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """A lead value that looks like ${column} or ${env:NAME} is sent literally, never expanded."""
    kyzo = start_server(ledger_bodies=True)
    rows = lead_rows(2)
    rows[0]["first_name"] = "${env:KYZO_API_KEY}"
    rows[1]["first_name"] = "${city} {{ name }} $${x}"
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = _config(tmp_path, kyzo, leads)

    result = run_cli(["run", str(config)])

    assert result.exit_code == 0, result.stdout + result.stderr
    by_ref = {c["referenceId"]: c["body"] for c in kyzo.calls()}
    for row in rows:
        body = by_ref[row["crm_id"]]
        assert body["agentParams"]["first_name"] == row["first_name"]
        assert body["tools"][1]["args"]["customerName"] == row["first_name"]


def test_a_10kb_phone_cell_refuses_the_file(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A 10 kB phone cell means a broken file (an unbalanced quote): exit 2 naming row and column."""
    rows = lead_rows(5)
    rows[3]["phone"] = "+1 (415) " + "5" * 10_000
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = _config(tmp_path, kyzo, leads)

    result = run_cli(["run", str(config)])

    message = assert_refused(result, tmp_path, kyzo, f"{leads}: row 4, column 'phone'", "10,009 characters")
    assert "unbalanced quote" in message
    assert "5" * 100 not in result.stderr


def test_an_unbalanced_quote_is_caught_by_the_phone_cell_length(kyzo: KyzoServer, tmp_path: Path) -> None:
    """The real-world cause: a quote never closed merges every later row into one phone cell."""
    lines = [HEADER] + [f"CRM-{i},N{i},Town,+1415555{i:04d},l{i}@example.com" for i in range(200)]
    lines[3] = 'CRM-X,Broken,Town,"+14155550999,x@example.com'
    lines[150] = 'CRM-Y,Other,Town,+14155550150",y@example.com'  # a stray quote closes it
    leads = tmp_path / "leads.csv"
    leads.write_text("\n".join(lines) + "\n")

    assert_refused(
        run_cli(["run", str(_config(tmp_path, kyzo, leads))]), tmp_path, kyzo, "row 3, column 'phone'"
    )


def test_a_long_but_not_absurd_phone_cell_rejects_only_its_row(kyzo: KyzoServer, tmp_path: Path) -> None:
    """200 characters is a bad value, not a broken file: that row is rejected, the rest are placed."""
    rows = lead_rows(5)
    rows[2]["phone"] = "4" * 200
    leads = write_leads(tmp_path / "leads.csv", rows)

    result = run_cli(["run", str(_config(tmp_path, kyzo, leads))])

    assert result.exit_code == 1, result.stdout + result.stderr
    assert len(kyzo.calls()) == 4
    results = read_results(tmp_path / "results.csv")
    assert results["dialer_error"][2] == "phone number is too long (200 characters)"


# ---------------------------------------------------------------- property-based


_CELLS = st.one_of(
    st.text(st.characters(exclude_characters="\x00"), max_size=12),  # NUL: the binary case, below
    st.sampled_from(
        ["+14155550132", "(415) 555-0132", "4.155550132E9", "", "a@b.co", "${x}", '"', '""', "\r\n", ";"]
    ),
)
_PHONES = st.one_of(st.sampled_from(valid_numbers(6)), _CELLS)


@st.composite
def _csv_like(draw: st.DrawFn) -> bytes:
    """Mostly well-formed lead lists with odd cells, separators, line ends and encodings."""
    separator = draw(st.sampled_from([",", ";", "\t", "|"]))
    header = draw(st.sampled_from([HEADER, HEADER, HEADER, "phone", "phone,phone", ""]))
    emails = st.one_of(st.sampled_from(["", "a@b.co", "x.y@example.org"]), _CELLS)
    well_formed = st.tuples(_CELLS, _CELLS, _CELLS, _PHONES, emails).map(list)
    rows = draw(
        st.lists(st.one_of(well_formed, well_formed, st.lists(_CELLS, max_size=6)), min_size=1, max_size=6)
    )
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join([header.replace(",", separator), *(separator.join(row) for row in rows)])
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


_LEAD_BYTES = st.one_of(
    st.binary(max_size=2000),
    st.binary(max_size=2000).map(lambda b: HEADER.encode() + b"\n" + b),
    _csv_like(),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_LEAD_BYTES)
def test_random_lead_files_never_crash(data: bytes) -> None:
    """Any bytes as the lead file: run --dry-run and validate --offline end with a documented exit code."""
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        leads = folder / "leads.csv"
        leads.write_bytes(data)
        config = write_config(folder, "http://127.0.0.1:9", leads)

        dry = run_cli(["run", str(config), "--dry-run"], api_key=None)
        check = run_cli(["validate", str(config), "--offline"], api_key=None)

        for result in (dry, check):
            assert result.exit_code in {0, 1, 2, 4}, result.stdout + result.stderr
            assert "Traceback" not in result.stdout + result.stderr
            json_logs(result.stderr)  # every log line is JSON: no stray text
        assert check.exit_code in {0, 2}
        event(f"run --dry-run exit {dry.exit_code}, validate exit {check.exit_code}")
        assert (folder / "results.csv").exists() == (dry.exit_code != 2)
        assert not (folder / "checkpoint.db").exists()


_BASE: dict[str, Any] = {
    "api": {"base_url": "http://127.0.0.1:9", "organization_id": "org_demo"},
    "campaign": {"name": "fuzz", "agent_id": "agent_demo", "from_phone_number_id": "pn_demo"},
    "leads": {
        "path": "@DIR@/leads.csv",
        "default_region": "US",
        "columns": {"phone": "phone", "email": "email", "reference_id": "crm_id"},
        "agent_params": {"first_name": "first_name", "city": "city"},
        "required": ["first_name"],
        "dedupe": "phone",
    },
    "tools": [
        {"tool_type": "whatsapp", "execution_order": 1, "args": {"customerName": "${first_name}"}},
        {
            "tool_type": "webhook",
            "execution_order": 0,
            "args": {"headers": {"Authorization": "${env:FUZZ_TOKEN}"}},
        },
    ],
    "limits": {"calls_per_second": 5.0, "max_concurrency": 4, "max_attempts": 3, "request_timeout_s": 10},
    "output": {
        "path": "@DIR@/results.csv",
        "errors_path": "@DIR@/errors.csv",
        "checkpoint": "@DIR@/checkpoint.db",
    },
    "calling_hours": {
        "start": "09:00",
        "end": "20:00",
        "days": ["mon", "fri"],
        "timezone": "America/New_York",
    },
    "notify": {"url": "https://hooks.example.com/x", "timeout_s": 5},
}
_KEYS = st.one_of(
    st.sampled_from(
        [
            "path",
            "name",
            "phone",
            "calls_per_secnd",
            "timezone",
            "dedupe",
            "encoding",
            "delimiter",
            "url",
            "args",
        ]
    ),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True),
    st.text(max_size=6),
)
_RAW_TOML = st.sampled_from(
    ["1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "nan", "-inf", "0x1F", "[]", "{}"]
)
_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
    st.text(max_size=16),
    st.sampled_from(
        [
            "${env:NOPE}",
            "${env:FUZZ_TOKEN}",
            "${first_name}",
            "${nosuch}",
            "$${x}",
            "",
            "US",
            "webhook",
            "@DIR@",
        ]
    ),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=6,
)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, _Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


class _Raw:
    """A TOML literal written as is (dates, times, hex, nan...)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _toml(document: dict[str, Any]) -> str:
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    for section, table in document.items():
        if isinstance(table, dict):
            lines.append(f"\n[{_toml_key(section)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node of a document, as the keys leading to it."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def _mutated_base(draw: st.DrawFn) -> dict[str, Any]:
    """The valid base config with a few nodes dropped, replaced or given a random sibling."""
    document = copy.deepcopy(_BASE)
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        operation = draw(st.sampled_from(["drop", "replace", "raw", "sibling"]))
        if operation == "drop":
            del parent[path[-1]]
        elif operation == "replace":
            parent[path[-1]] = draw(_VALUES)
        elif operation == "raw":
            parent[path[-1]] = _Raw(draw(_RAW_TOML))
        elif isinstance(parent, dict):
            parent[draw(_KEYS)] = draw(_VALUES)
        else:
            parent.append(draw(_VALUES))
    return document


@st.composite
def _config_texts(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.text(max_size=200))
    random_document = st.dictionaries(_KEYS, _VALUES, max_size=4)
    document = draw(random_document) if kind == 1 else draw(_mutated_base())
    text = _toml(document)
    if draw(st.integers(0, 9)) == 0:
        lines = text.splitlines()
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=30)))
        text = "\n".join(lines)
    return text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_config_texts())
def test_random_configs_never_crash(text: str) -> None:
    """Any TOML-ish config: validate --offline ends with a documented exit code and no traceback."""
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        write_leads(folder / "leads.csv", lead_rows(3))
        config = folder / "campaign.toml"
        config.write_text(text.replace("@DIR@", folder_name), encoding="utf-8", errors="surrogatepass")

        result = run_cli(
            ["validate", str(config), "--offline"], api_key=None, env={"FUZZ_TOKEN": "fuzz-secret-1"}
        )

        output = result.stdout + result.stderr
        assert result.exit_code in {0, 1, 2, 4}, output
        assert "Traceback" not in output
        assert "fuzz-secret-1" not in output
        json_logs(result.stderr)
        event(f"validate exit {result.exit_code}")
