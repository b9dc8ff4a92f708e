"""What `dialer --help` pays for before it prints: the interpreter and the CLI library, not the
dataframe, HTTP or config stack a command loads when it runs (issue 15's fixed costs)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# (pydantic is not here: typer itself imports it to coerce a command's options)
HEAVY = ("polars", "httpx", "aiohttp", "structlog", "matplotlib", "phonenumbers")
PROBE = """
import json, sys
from dialer.cli import main
sys.argv = ["dialer", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def _imported(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["status", "--help"], ["mock-server", "--help"]]
)
def test_help_imports_none_of_the_heavy_libraries(args: list[str]) -> None:
    """`dialer --help` (and a command's --help) loads no dataframe, HTTP, logging or chart library."""
    assert _imported(*args) & set(HEAVY) == set()


def test_the_probe_sees_a_heavy_import_when_there_is_one() -> None:
    """The check above can fail: a command that runs (validate of a missing file) does import them."""
    assert {"polars", "structlog"} <= _imported("validate", "/nonexistent/campaign.toml")
