"""`dialer init`: a commented campaign file written from a lead list, ready for `validate`.

The list is read with the same reader and rules as `run`; `column_guess` proposes the mapping,
and every choice is written with its reason next to it, so the file doubles as the reference a
newcomer reads. Ids not given are written as `<unset: ...>`, which the config loader reports by
key. With KYZO_API_KEY and an organization, Get Agents fills the agent when there is only one.
Sample values are masked (no full phone number or e-mail ever lands in the file).
"""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import SecretStr

from dialer import logs
from dialer.column_guess import Choice, Mapping, guess, snake_case
from dialer.config_schema import LimitsConfig
from dialer.errors import UserError
from dialer.lead_files import load_lead_list
from dialer.outputs import write_text_atomic

UNSET = "<unset: {}>"  # config.py reports a value still starting so by its key
_COMMON = 5  # a sample value shown as it is only when this many rows share it (as the report does)
_EMAIL = re.compile(r"^[^@\s]+@([^@\s]+\.[^@\s]+)$")
_DIGITS = re.compile(r"\d")


@dataclass(frozen=True)
class InitRequest:
    leads: Path
    output: Path | None = None
    base_url: str | None = None
    organization_id: str | None = None
    agent_id: str | None = None
    from_phone_number_id: str | None = None
    name: str | None = None
    force: bool = False


@dataclass
class Account:
    """What Get Agents and Get Campaigns said, as comments and filled ids."""

    agent_id: str | None = None
    from_phone_number_id: str | None = None
    agent_note: str = ""
    campaigns_note: str = ""
    said: list[str] = field(default_factory=list)


def default_output(leads: Path, cwd: Path) -> Path:
    folder = cwd / "configs"
    return (Path("configs") if folder.is_dir() else Path()) / f"{leads.stem}.toml"


def init_campaign(
    request: InitRequest, *, environ: dict[str, str], cwd: Path, transport: Any = None
) -> tuple[Path, list[str]]:
    """Write the campaign file; returns its path and the lines saying what was chosen and why."""
    output = request.output or default_output(request.leads, cwd)
    if output.exists() and not request.force:
        raise UserError(f"{output}: already exists; nothing was written. Add --force to replace it")
    frame = load_lead_list(request.leads)
    mapping = guess(frame)
    base_url = request.base_url or environ.get("KYZO_BASE_URL")
    account = _account(request, base_url, environ.get("KYZO_API_KEY"), transport)
    name = request.name or _campaign_name(request.leads)
    text = _render(request, frame, mapping, account, base_url, name)
    tomllib.loads(text)  # a file this command writes must parse: a bug here is a crash, not a file
    write_text_atomic(text, output)
    said = [
        _said("phone", mapping.phone),
        _said("email", mapping.email),
        _said("reference_id", mapping.reference_id),
        f"default_region: {mapping.region} ({mapping.region_why})",
        *account.said,
    ]
    return output, said


def _said(what: str, choice: Choice) -> str:
    if choice.column is None:
        return f"{what}: none ({choice.why})"
    return f"{what}: column '{choice.column}' ({choice.why})"


def _campaign_name(leads: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", leads.stem).strip("-._")
    return name or "campaign"


def _account(request: InitRequest, base_url: str | None, key: str | None, transport: Any) -> Account:
    account = Account(request.agent_id, request.from_phone_number_id)
    if not key or not request.organization_id or not base_url:
        return account  # without the key (or where to send it) nothing is sent
    from dialer.client import KyzoClient, Listing, classify_listing

    async def fetch() -> tuple[Any, Any]:
        client = KyzoClient(
            base_url, SecretStr(key), request.organization_id or "", "", timeout_s=10, transport=transport
        )
        async with client:
            return classify_listing(await client.list_agents()), classify_listing(
                await client.list_campaigns()
            )

    agents, campaigns = asyncio.run(fetch())
    if agents.kind not in (Listing.OK, Listing.NOT_A_LIST):
        account.agent_note = f"Get Agents answered {agents.status or agents.detail}: agent not looked up"
        account.said.append(f"agent_id: not looked up ({account.agent_note})")
        return account
    listed = [item for item in agents.items if item.get("id")]
    account.agent_note = "agents of this organization: " + (
        ", ".join(f"{item['id']} ({item.get('name', '')})" for item in listed) or "none"
    )
    if account.agent_id is None and len(listed) == 1:
        account.agent_id = str(listed[0]["id"])
        account.said.append(f"agent_id: {account.agent_id} (the organization's only agent)")
        numbers = listed[0].get("phoneNumberIds")
        if account.from_phone_number_id is None and isinstance(numbers, list) and len(numbers) == 1:
            account.from_phone_number_id = str(numbers[0])
            account.said.append(f"from_phone_number_id: {numbers[0]} (the agent's only number)")
    elif account.agent_id is None:
        account.said.append(f"agent_id: not set ({len(listed)} agents; they are listed in the file)")
    if campaigns.kind is Listing.OK and campaigns.items:
        account.campaigns_note = "campaigns in Kyzo: " + ", ".join(
            f"{item.get('id')} ({item.get('name', '')})" for item in campaigns.items
        )
    return account


def _render(
    request: InitRequest,
    frame: pl.DataFrame,
    mapping: Mapping,
    account: Account,
    base_url: str | None,
    name: str,
) -> str:
    limits = LimitsConfig()
    lines = [
        f"# Campaign for {request.leads}, written by `dialer init` on {date.today():%Y-%m-%d}.",
        "# Check each choice below, then:  dialer validate THIS-FILE  and  dialer run THIS-FILE",
        "# The API key never lives here: export KYZO_API_KEY=...  Reference: docs/reference.md",
        "",
        "[api]",
        _line(
            "base_url",
            base_url or UNSET.format("the Kyzo API's base URL, https://..."),
            "env KYZO_BASE_URL overrides",
        ),
        _line(
            "organization_id",
            request.organization_id or UNSET.format("your organization id (dialer init --organization-id)"),
            "",
        ),
        "",
        "[campaign]",
        _line("name", name, "names the default output and checkpoint files"),
        _line(
            "agent_id",
            account.agent_id or UNSET.format("the agent that makes the calls (dialer agents CONFIG)"),
            account.agent_note,
        ),
        _line(
            "from_phone_number_id",
            account.from_phone_number_id or UNSET.format("one of the agent's phoneNumberIds"),
            "the number the calls come from",
        ),
    ]
    if account.campaigns_note:
        lines.append(f"# {account.campaigns_note}")
    lines += [
        "",
        "[leads]",
        _line("path", str(request.leads), ".csv, .tsv or .parquet, or an s3:// URL; --input overrides"),
        _line("default_region", mapping.region, f"for numbers without a country code: {mapping.region_why}"),
        '# do_not_call = "do-not-call.csv"   # numbers never to call, one per line or a phone column',
        "",
        "[leads.columns]                      # request field -> column of the list",
        _column_line("phone", mapping.phone, required=True),
        _column_line("email", mapping.email),
        _column_line("reference_id", mapping.reference_id),
        "",
        "[leads.agent_params]                 # agentParams key -> column; the agent reads {{ key }}",
    ]
    used = {mapping.phone.column, mapping.email.column, mapping.reference_id.column}
    keys: set[str] = set()
    for column in frame.columns:
        if column in used:
            continue
        key = snake_case(column)
        while key in keys:
            key += "_2"
        keys.add(key)
        lines.append(_line(key, column, "e.g. " + ", ".join(_samples(frame[column])) or "empty"))
    lines += [
        "",
        "[limits]                             # pace and patience",
        _line("calls_per_second", limits.calls_per_second, "at most this many placeCall requests per second"),
        _line("max_concurrency", limits.max_concurrency, "requests in flight at once"),
        _line(
            "max_attempts", limits.max_attempts, "tries per lead for retryable answers (429, 5xx, timeouts)"
        ),
        _line("request_timeout_s", limits.request_timeout_s, "seconds before a request counts as timed out"),
        "",
        "[output]                             # local paths, or s3://, gs://, az:// URLs",
        _line("path", f"out/{name}.results.csv", "every row with its outcome; .csv or .parquet"),
        _line("errors_path", f"out/{name}.errors.csv", "the rows to fix and upload again"),
        _line("checkpoint", f"out/{name}.checkpoint.db", "always local: back it up"),
        _line("report", f"out/{name}.report.html", "one page, written at the end of every run"),
        "",
        "# [calling_hours]                    # when leads may be called, in each lead's own time",
        '# start = "09:00"',
        '# end = "20:00"',
        '# days = ["mon", "tue", "wed", "thu", "fri"]',
        '# timezone = "America/New_York"      # for leads whose number does not tell their zone',
        "",
        "# [outcomes]                         # learn what happened on each call: docs/outcomes.md",
        '# public_url = "https://dialer.example.com/kyzo/outcomes"',
        '# listen = "127.0.0.1:8788"',
        '# token = "${env:KYZO_OUTCOMES_TOKEN}"',
        "",
        "# [recycle]                          # call back the leads nobody answered (needs [outcomes])",
        '# statuses = ["no-answer", "busy", "voicemail"]',
        '# after = "4h"',
        "# max_calls = 3",
        "",
    ]
    return "\n".join(lines)


def _line(key: str, value: object, comment: str) -> str:
    text = f"{key} = {_toml(value)}"
    return f"{text:<36} # {comment}" if comment else text


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def _column_line(field_name: str, choice: Choice, *, required: bool = False) -> str:
    others = f"; also qualified: {', '.join(repr(o) for o in choice.others)}" if choice.others else ""
    if choice.column is None:
        if required:
            return _line(field_name, UNSET.format("the column that holds the phone numbers"), choice.why)
        return f'# {field_name} = ""{"":<20} # {choice.why}'
    return _line(field_name, choice.column, choice.why + others)


def _samples(cells: pl.Series) -> list[str]:
    """Two distinct sample values, masked: phones as logs mask them, e-mails to their domain,
    anything else shown only when at least five rows share it."""
    values = cells.drop_nulls().str.strip_chars()
    values = values.filter(values != "").head(2000)
    counts = dict(values.value_counts().iter_rows())
    return [_masked(value, counts.get(value, 0)) for value in values.unique(maintain_order=True).head(2)]


def _masked(value: str, shared_by: int) -> str:
    email = _EMAIL.match(value)
    if email:
        return json.dumps(f"{value[0]}***@{email.group(1)}")
    if len(_DIGITS.findall(value)) >= 7:
        return json.dumps(logs.masked_phone(value))
    if shared_by >= _COMMON:
        return json.dumps(logs.scrub(value[:24]), ensure_ascii=False)
    return json.dumps(value[0] + "***", ensure_ascii=False)
