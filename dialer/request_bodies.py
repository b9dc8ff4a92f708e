"""placeCall request bodies: how a lead row becomes the JSON the API receives.

Tool args may name lead columns as `${column}` (filled here, per lead) and hold Kyzo's own
`{{ name }}` placeholders (passed through untouched). Bodies are built a slice of rows at a
time, so a million-row list never becomes a million dicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from dialer import jsontree
from dialer.config import Settings
from dialer.config_schema import OutcomesConfig, ToolConfig
from dialer.errors import ConfigError
from dialer.leads import KEY, PHONE, RECYCLE_OF_CALLS, ROW

_TEMPLATE = re.compile(r"\$\$\{|\$\{([^}]*)\}")


@dataclass(frozen=True)
class LeadRequest:
    """One lead ready to send: its checkpoint key, input row and placeCall body."""

    key: str
    row: int
    phone: str
    body: dict[str, Any]
    timezone: str | None = None  # the lead's own IANA zone, when the list has a column for it
    recycle_of_calls: int | None = None  # a call again ([recycle]) of a lead with this many calls


@dataclass(frozen=True)
class Template:
    """A tool-arg string split into literal text and `${column}` references."""

    parts: tuple[tuple[bool, str], ...]  # (is_column, text)

    def render(self, row: Mapping[str, str]) -> str:
        return "".join(row[text] if is_column else text for is_column, text in self.parts)

    @property
    def columns(self) -> list[str]:
        return [text for is_column, text in self.parts if is_column]


def parse_template(text: str) -> Template | str:
    """Split `${column}` references out; `$${` is a literal `${`; `{{ x }}` is Kyzo's."""
    parts: list[tuple[bool, str]] = []
    position = 0
    literal = ""
    for match in _TEMPLATE.finditer(text):
        literal += text[position : match.start()]
        if match.group(0) == "$${":
            literal += "${"
        else:
            if literal:
                parts.append((False, literal))
                literal = ""
            parts.append((True, match.group(1).strip()))
        position = match.end()
    literal += text[position:]
    if not any(is_column for is_column, _ in parts):
        return literal
    if literal:
        parts.append((False, literal))
    return Template(tuple(parts))


def compile_args(value: Any) -> Any:
    return jsontree.map_leaves(value, lambda leaf, _: parse_template(leaf) if isinstance(leaf, str) else leaf)


def _template_columns(value: Any) -> Iterator[str]:
    for leaf in jsontree.iter_leaves(value):
        if isinstance(leaf, Template):
            yield from leaf.columns


def _render(value: Any, row: Mapping[str, str]) -> Any:
    return jsontree.map_leaves(
        value, lambda leaf, _: leaf.render(row) if isinstance(leaf, Template) else leaf
    )


@dataclass(frozen=True)
class RequestSpec:
    """How a lead row becomes a placeCall body; compiled once per run."""

    from_phone_number_id: str
    email_column: str | None
    reference_column: str | None
    timezone_column: str | None
    agent_params: Mapping[str, str]
    tools: list[dict[str, Any]]
    template_columns: tuple[str, ...]

    @classmethod
    def build(cls, settings: Settings, columns: Sequence[str]) -> RequestSpec:
        tools = [
            {
                "tool_type": t.tool_type,
                "execution_order": t.execution_order,
                "args": compile_args(t.args),
            }
            for t in sorted(settings.file.tools, key=_tool_order)
        ]
        if settings.outcomes is not None:
            tools.append(outcomes_tool(settings.outcomes, after=tools))
        used = list(dict.fromkeys(c for tool in tools for c in _template_columns(tool["args"])))
        missing = [c for c in used if c not in columns]
        if missing:
            raise ConfigError(
                str(settings.source),
                [
                    f"tools: '${{{c}}}' names a column that is not in {settings.leads_path} "
                    f"(columns: {', '.join(columns)}); write $${{ for a literal ${{"
                    for c in missing
                ],
            )
        cols = settings.leads.columns
        return cls(
            from_phone_number_id=settings.campaign.from_phone_number_id,
            email_column=cols.email,
            reference_column=cols.reference_id,
            timezone_column=cols.timezone,
            agent_params=dict(settings.leads.agent_params),
            tools=tools,
            template_columns=tuple(used),
        )

    def needed_columns(self) -> list[str]:
        names = [KEY, ROW, PHONE, *self.agent_params.values(), *self.template_columns]
        names += [c for c in (self.email_column, self.reference_column, self.timezone_column) if c]
        return list(dict.fromkeys(names))

    def body(self, row: Mapping[str, Any]) -> dict[str, Any]:
        text = {k: ("" if v is None else str(v)) for k, v in row.items()}
        body: dict[str, Any] = {
            "fromPhoneNumberId": self.from_phone_number_id,
            "phoneNumber": text[PHONE],
        }
        if self.email_column and text[self.email_column].strip():
            body["email"] = text[self.email_column].strip()
        body["agentParams"] = {param: text[column] for param, column in self.agent_params.items()}
        if self.reference_column:
            body["referenceId"] = text[self.reference_column].strip()
        if self.tools:
            body["tools"] = [{**tool, "args": _render(tool["args"], text)} for tool in self.tools]
        return body


def outcomes_tool(outcomes: OutcomesConfig, after: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The webhook tool that brings each call's outcome back to `dialer collect`, run last.

    No filters: every call must come back, or a lead would wait for its outcome forever.
    """
    last = max((int(tool["execution_order"]) for tool in after), default=-1)
    return {
        "tool_type": "webhook",
        "execution_order": last + 1,
        "args": {
            "webhook_url": outcomes.public_url,
            "method": "POST",
            "headers": {"Authorization": f"Bearer {outcomes.token}"},
            "timeout": 30,
        },
    }


def _tool_order(tool: ToolConfig) -> int:
    return tool.execution_order


def iter_requests(frame: pl.DataFrame, spec: RequestSpec, slice_size: int = 2000) -> Iterator[LeadRequest]:
    """Yield request bodies a slice at a time, in input order."""
    columns = spec.needed_columns()
    recycling = RECYCLE_OF_CALLS in frame.columns
    if recycling:
        columns.append(RECYCLE_OF_CALLS)
    for offset in range(0, frame.height, slice_size):
        chunk = frame.slice(offset, slice_size).select(columns)
        for row in chunk.iter_rows(named=True):
            zone = row[spec.timezone_column] if spec.timezone_column else None
            recycle = row[RECYCLE_OF_CALLS] if recycling else None
            yield LeadRequest(row[KEY], row[ROW], row[PHONE], spec.body(row), zone, recycle)
