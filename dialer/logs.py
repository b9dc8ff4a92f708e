"""Logging: structlog to stderr, console lines on a TTY and JSON lines otherwise, secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any, Literal, TextIO

import structlog

from dialer import jsontree

LogFormat = Literal["auto", "console", "json"]
REDACTED = "***"
# Shorter values are not treated as secrets: redacting "1" or "ab" would garble every line.
MIN_SECRET_CHARS = 4
_PHONE_IN_TEXT = re.compile(r"\+[1-9][0-9]{6,14}")  # E.164, as the dialer writes numbers
_secrets: set[str] = set()
_log_pii = False
_level = logging.INFO
_log_path: Path | None = None


def set_log_pii(enabled: bool) -> None:
    """--log-pii: full phone numbers in logs, for debugging only."""
    global _log_pii  # noqa: PLW0603 - one process-wide switch, set once by the CLI
    _log_pii = enabled


def add_secrets(values: Iterable[str]) -> None:
    """Remember values that must never be printed (API key, resolved ${env:...})."""
    _secrets.update(v for v in values if is_secret_sized(v))


def is_secret_sized(value: str) -> bool:
    return len(value) >= MIN_SECRET_CHARS


def hide(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` replaced, longest first (one may contain another)."""
    for secret in sorted((s for s in secrets if is_secret_sized(s)), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact(text: str) -> str:
    return hide(text, _secrets)


def redact_tree(value: Any, *, keys: bool = False) -> Any:
    """Redact every string inside a JSON-like value (redacting its JSON text misses escaped secrets);
    with `keys`, object keys too (a payload from outside may use a secret as a key)."""
    return jsontree.map_leaves(
        value, lambda leaf, _: redact(leaf) if isinstance(leaf, str) else leaf, key=redact if keys else None
    )


def scrub(text: str) -> str:
    """Secrets out and phone numbers masked, whatever --log-pii says: for text leaving the host."""
    return _PHONE_IN_TEXT.sub(_mask_match, redact(text))


def _redact_value(value: Any) -> Any:
    return jsontree.map_leaves(value, lambda leaf, _: _redact_leaf(leaf))


def _redact_leaf(value: Any) -> Any:
    if isinstance(value, BaseException):
        value = str(value)
    if isinstance(value, str):
        # a number inside free text (an API error echoing the phone, a checkpoint message) too
        return redact(value) if _log_pii else _PHONE_IN_TEXT.sub(_mask_match, redact(value))
    return value


def _redact_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _secrets and _log_pii:
        return event
    return {k: _redact_value(v) for k, v in event.items()}


def _mask_match(match: re.Match[str]) -> str:
    return mask_phone(match.group(0))


def mask_phone(phone: str | None) -> str:
    """+14155550132 -> +1415*****32: enough to tell leads apart in a log, not to dial them."""
    if not phone:
        return ""
    return phone if _log_pii else masked_phone(phone)


def masked_phone(phone: str) -> str:
    """The mask of `mask_phone`, whatever --log-pii says: for text written to files."""
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:5] + "*" * (len(phone) - 7) + phone[-2:]


def configure(
    fmt: LogFormat = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    path: Path | None = None,
) -> None:
    """Set up structlog once per process; `auto` picks console on a TTY and JSON otherwise.

    `path` is the file `stream` writes to, if any: a run that cannot record an answer says so.
    """
    global _level, _log_path  # noqa: PLW0603 - what configure() set, for work done only to be logged
    _level = logging.getLevelNamesMapping()[level.upper()]
    _log_path = path
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not _is_tty(out))
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=_is_tty(out))
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def log_path() -> Path | None:
    """The file the logs go to (--log-file), or None for stderr."""
    return _log_path


def enabled_for(level: str) -> bool:
    """Would a line at `level` be written? (Skip work done only for a line nobody sees.)"""
    return logging.getLevelNamesMapping()[level.upper()] >= _level


def get_logger() -> Any:
    return structlog.get_logger("dialer")


def report_error(message: str, exit_code: int, stream: TextIO | None = None) -> None:
    """A user-facing error: plain text on a TTY, one JSON log line otherwise; never a traceback."""
    out = stream or sys.stderr
    message = redact(message)
    if _is_tty(out):
        print(f"error: {message}", file=out)
    else:
        get_logger().error("error", message=message, exit_code=exit_code)
