"""The campaign file the tests and the benchmarks run: built as tables, written as TOML.

One builder instead of TOML text copied into each test file: a key renamed in the config
is renamed here once, and a value is always quoted the way TOML wants it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

DEFAULT_TOOLS: list[dict[str, Any]] = [
    {"tool_type": "sentiment", "execution_order": 0, "args": {"language": "English"}},
    {
        "tool_type": "whatsapp",
        "execution_order": 1,
        "args": {
            "CLIENT_WHATSAPP_PHONE_NUMBER": "+19999999999",
            "customerName": "${first_name}",
            "campaignName": "Q3",
        },
    },
]


def campaign_tables(
    *,
    base_url: str,
    leads: Path | str,
    folder: Path,
    name: str = "test-campaign",
    organization_id: str = "org_demo",
    agent_id: str = "agent_demo",
    from_phone_number_id: str = "pn_demo",
    limits: Mapping[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    results_suffix: str = ".csv",
    **tables: Mapping[str, Any],
) -> dict[str, Any]:
    """The standard campaign (lead columns crm_id, first_name, city, phone, email), outputs in `folder`.

    `tables` are merged over it key by key, e.g. `api={"retry_ambiguous": True}`.
    """
    document: dict[str, Any] = {
        "api": {"base_url": base_url, "organization_id": organization_id},
        "campaign": {"name": name, "agent_id": agent_id, "from_phone_number_id": from_phone_number_id},
        "leads": {
            "path": str(leads),
            "default_region": "US",
            "columns": {"phone": "phone", "email": "email", "reference_id": "crm_id"},
            "agent_params": {"first_name": "first_name", "city": "city"},
        },
        "tools": copy.deepcopy(DEFAULT_TOOLS if tools is None else tools),
        "limits": {
            "calls_per_second": 10000,
            "max_concurrency": 8,
            "max_attempts": 3,
            "request_timeout_s": 10,
        },
        "output": {
            "path": str(folder / f"results{results_suffix}"),
            "errors_path": str(folder / f"errors{results_suffix}"),
            "checkpoint": str(folder / "checkpoint.db"),
            "report": str(folder / "report.html"),
        },
    }
    document["limits"].update(limits or {})
    return merged(document, tables)


def merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `over` laid on top: tables merge key by key, anything else replaces."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def write_campaign(path: Path, tables: Mapping[str, Any], extra: str = "") -> Path:
    """Write the tables as TOML, then `extra` verbatim (a test's hand-made or broken lines)."""
    document = {key: value for key, value in tables.items() if value != []}  # TOML has no empty [[x]]
    path.write_text(tomli_w.dumps(document) + ("\n" + extra if extra else ""), encoding="utf-8")
    return path
