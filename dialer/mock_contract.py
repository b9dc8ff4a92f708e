"""What the local server accepts as a placeCall body: the API contract, stricter where it is silent.

Separate from the server's behaviour (pacing, faults, the ledger), and like it independent of
the rest of `dialer`, so a client bug cannot hide behind shared validation code.
"""

from __future__ import annotations

import re

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # [0-9], not \d: \d also matches non-ASCII digits
_FIELDS = frozenset({"fromPhoneNumberId", "phoneNumber", "email", "agentParams", "referenceId", "tools"})
_TOOL_FIELDS = frozenset({"tool_type", "execution_order", "args"})
_TOOL_TYPES = ("sentiment", "custom_field_extraction", "email", "whatsapp", "calendar", "webhook")


def _json_type(value: object) -> str:
    """JSON name of a decoded value, for error messages a client author understands."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _validate_tools(tools: object) -> str | None:
    """First problem in `tools`, or None."""
    if not isinstance(tools, list):
        return f"tools: must be an array, got {_json_type(tools)}"
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            return f"{where}: must be an object, got {_json_type(tool)}"
        if unknown := sorted(set(tool) - _TOOL_FIELDS):
            return f"{where}: unknown field(s) {', '.join(unknown)}"
        if missing := sorted(_TOOL_FIELDS - set(tool)):
            return f"{where}: missing required field(s) {', '.join(missing)}"
        kind = tool["tool_type"]
        if not isinstance(kind, str) or kind not in _TOOL_TYPES:
            return f"{where}.tool_type: unknown tool_type {kind!r}, expected one of {_TOOL_TYPES}"
        order = tool["execution_order"]
        if not isinstance(order, int) or isinstance(order, bool):
            return f"{where}.execution_order: must be an integer, got {_json_type(order)}"
        if not isinstance(tool["args"], dict):
            return f"{where}.args: must be an object, got {_json_type(tool['args'])}"
    return None


def validate_body(body: object, phone_number_ids: tuple[str, ...]) -> str | None:
    """First problem with a placeCall body, or None.

    Stricter than the contract strictly needs (unknown keys, nulls for optional fields are
    refused) so that client bugs show up here instead of against the real API.
    """
    if not isinstance(body, dict):
        return f"body must be a JSON object, got {_json_type(body)}"
    if unknown := sorted(set(body) - _FIELDS):
        return f"unknown field(s): {', '.join(unknown)}"
    for name in ("fromPhoneNumberId", "phoneNumber"):
        if name not in body:
            return f"{name}: required field is missing"
    for name in ("fromPhoneNumberId", "phoneNumber", "email", "referenceId"):
        if name in body and not isinstance(body[name], str):
            return f"{name}: must be a string, got {_json_type(body[name])}"
    if body["fromPhoneNumberId"] not in phone_number_ids:
        return f"unknown fromPhoneNumberId {body['fromPhoneNumberId']!r}: not a number of this account"
    if not _E164.fullmatch(body["phoneNumber"]):
        return f"phoneNumber: {body['phoneNumber']!r} is not E.164 (expected like +19999999999)"
    params = body.get("agentParams", {})
    if not isinstance(params, dict):
        return f"agentParams: must be an object, got {_json_type(params)}"
    for key, value in params.items():
        if not isinstance(value, str):
            return f"agentParams.{key}: values must be strings, got {_json_type(value)}"
    return _validate_tools(body.get("tools", []))
