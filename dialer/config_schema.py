"""The shape of a campaign file: one pydantic model per TOML table, strict, every key known.

`config.load_settings` reads the file, resolves `${env:...}` and validates it against
`CampaignFile`; the models here say what each key may hold, never where a value came from.
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from dialer.hours import CallingHours

MAX_CALLS_PER_SECOND = 10_000.0
ToolType = Literal["sentiment", "custom_field_extraction", "email", "whatsapp", "calendar", "webhook"]
TOOL_TYPES: tuple[str, ...] = get_args(ToolType)


class _Strict(BaseModel):
    # strict: `calls_per_second = true` or `max_concurrency = "3"` is a mistake, not a value;
    # paths are the one place where TOML's string stands for another type (strict=False there).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ApiConfig(_Strict):
    base_url: str
    organization_id: str = Field(min_length=1)
    retry_ambiguous: bool = False
    allow_insecure_http: bool = False
    ca_bundle: Path | None = Field(default=None, strict=False)
    transport: Literal["aiohttp", "httpx"] = "aiohttp"

    @field_validator("base_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. https://api.kyzo.ai/v1")
        return value.rstrip("/")

    @field_validator("ca_bundle")
    @classmethod
    def _loadable_bundle(cls, value: Path | None) -> Path | None:
        """A bundle that cannot load must stop the run before anything is opened or sent."""
        if value is not None:
            try:
                ssl.create_default_context(cafile=str(value))
            except (OSError, ssl.SSLError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ValueError(f"cannot load the CA bundle {value}: {reason}") from None
        return value

    @model_validator(mode="after")
    def _no_key_over_plain_http(self) -> ApiConfig:
        if is_insecure_remote(self.base_url) and not self.allow_insecure_http:
            raise ValueError(
                f"base_url {self.base_url} is plain http:// to a non-loopback host: the API key "
                "would travel unencrypted. Use https://, or set api.allow_insecure_http = true"
            )
        return self


class CampaignConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    agent_id: str = Field(min_length=1)
    from_phone_number_id: str = Field(min_length=1)


class ColumnsConfig(_Strict):
    phone: str = Field(min_length=1)
    email: str | None = None
    reference_id: str | None = None
    timezone: str | None = None


class LeadsConfig(_Strict):
    path: Path = Field(strict=False)
    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    columns: ColumnsConfig
    agent_params: dict[str, str] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    allowed_regions: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] | None = None
    dedupe: Literal["phone", "reference_id", "none"] = "phone"
    do_not_call: Path | None = Field(default=None, strict=False)
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    encoding: str = "utf-8"

    @model_validator(mode="after")
    def _required_are_params(self) -> LeadsConfig:
        unknown = [name for name in self.required if name not in self.agent_params]
        if unknown:
            raise ValueError(
                f"required names {unknown} are not keys of [leads.agent_params] ({sorted(self.agent_params)})"
            )
        if self.dedupe == "reference_id" and not self.columns.reference_id:
            raise ValueError('dedupe = "reference_id" needs leads.columns.reference_id')
        return self


class ToolConfig(_Strict):
    tool_type: ToolType
    execution_order: int = Field(ge=0)
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("args")
    @classmethod
    def _json_values(cls, args: dict[str, Any]) -> dict[str, Any]:
        # TOML has dates, times and nan; the placeCall body is JSON, which has none of them.
        try:
            json.dumps(args, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{exc}; write dates and times as quoted strings") from None
        return args


class LimitsConfig(_Strict):
    calls_per_second: float = Field(default=5.0, gt=0, le=MAX_CALLS_PER_SECOND)
    max_concurrency: int = Field(default=10, ge=1, le=1000)
    max_attempts: int = Field(default=5, ge=1, le=100)
    request_timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_retry_after_s: float = Field(default=120.0, gt=0)
    max_consecutive_429: int = Field(default=20, ge=1)
    breaker_window: int = Field(default=50, ge=1)
    breaker_ratio: float = Field(default=0.8, gt=0, le=1)


class OutputConfig(_Strict):
    path: Path | None = Field(default=None, strict=False)
    errors_path: Path | None = Field(default=None, strict=False)
    checkpoint: Path | None = Field(default=None, strict=False)
    report: Path | None = Field(default=None, strict=False)


class StorageConfig(_Strict):
    """Where object storage is and whose credentials to use; never a secret (the standard
    credential chains read those from the environment, a profile or the instance)."""

    endpoint_url: str | None = None  # an S3-compatible store (MinIO, ...); AWS_ENDPOINT_URL works too
    region: str | None = None
    profile: str | None = None

    @model_validator(mode="after")
    def _endpoint_over_tls(self) -> StorageConfig:
        if self.endpoint_url is not None:
            if urlsplit(self.endpoint_url).scheme not in ("http", "https"):
                raise ValueError(f"endpoint_url {self.endpoint_url} is not an http(s):// URL")
            if is_insecure_remote(self.endpoint_url):
                raise ValueError(
                    f"endpoint_url {self.endpoint_url} is plain http:// to a non-loopback host: "
                    "credentials and lead lists would travel unencrypted. Use https://"
                )
        return self


class NotifyConfig(_Strict):
    """Where to post the run summary (a Slack-compatible incoming webhook, say)."""

    url: str
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if is_insecure_remote(value):
            raise ValueError("must be https:// (plain http:// is only allowed to a loopback address)")
        return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_JSON_PATH = re.compile(r"[^.\s]+(?:\.[^.\s]+)*")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
RESERVED_FIELDS = frozenset({"status", "received_at"})  # outcome_status, outcome_received_at


def parse_duration(value: Any) -> Any:
    """ "90s", "30m", "4h", "2d" -> seconds; anything else is left for the type check to refuse."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if not match:
            raise ValueError(f'{value!r} is not a duration: write a number and s, m, h or d, e.g. "4h"')
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError('write a duration as a quoted string, e.g. "4h" or "90s"')


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


def _paths(value: Any) -> Any:
    """One JSON path or a list of alternatives (the first one found in a payload wins)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ValueError('must be a dot path such as "data.call.id", or a list of them')
    for item in items:
        if not _JSON_PATH.fullmatch(item):
            raise ValueError(f"{item!r} is not a dot path (keys separated by dots, no spaces)")
    return tuple(items)


JsonPaths = Annotated[tuple[str, ...], BeforeValidator(_paths)]

# Where the common platforms put each value (docs/outcomes.md); tried in this order.
DEFAULT_CALL_ID_PATHS = (
    "callId", "call_id", "call.id", "call.call_id", "data.callId", "data.call_id", "data.call.id",
    "message.call.id",
)  # fmt: skip
DEFAULT_REFERENCE_ID_PATHS = (
    "referenceId", "reference_id", "metadata.referenceId", "metadata.reference_id",
    "call.metadata.referenceId", "data.referenceId", "data.reference_id", "data.metadata.referenceId",
)  # fmt: skip
DEFAULT_STATUS_PATHS = (
    "status", "call_status", "call.call_status", "call.status", "data.status", "data.call_status",
)  # fmt: skip


def normalise_status(value: str) -> str:
    """ "No Answer", "no_answer" and "no-answer" are one status: lowercase, words joined by -."""
    return "-".join(re.split(r"[\s_\-]+", value.strip().lower())).strip("-")


class OutcomesConfig(_Strict):
    """`[outcomes]`: where Kyzo's webhook tool posts each call's outcome, and how to read it."""

    public_url: str
    listen: str = "127.0.0.1:8788"
    token: str = Field(min_length=16)
    call_id: JsonPaths = DEFAULT_CALL_ID_PATHS
    reference_id: JsonPaths = DEFAULT_REFERENCE_ID_PATHS
    status: JsonPaths = DEFAULT_STATUS_PATHS
    fields: dict[str, Annotated[str, Field(pattern=_JSON_PATH.pattern)]] = Field(default_factory=dict)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "must be an https:// URL that Kyzo can reach, e.g. https://dialer.example.com/kyzo"
            )
        if is_insecure_remote(value):
            raise ValueError("must be https:// (the bearer token travels with every post)")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        listen_address(value)
        return value

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _FIELD_NAME.fullmatch(name) or name in RESERVED_FIELDS:
                raise ValueError(
                    f"{name!r} cannot name a column outcome_{name}: use lowercase letters, digits and _, "
                    f"not {' or '.join(sorted(RESERVED_FIELDS))}"
                )
        return value

    @property
    def path(self) -> str:
        """The URL path the receiver answers on: the path of `public_url`."""
        return urlsplit(self.public_url).path or "/"


def listen_address(value: str) -> tuple[str, int]:
    """ "127.0.0.1:8788" or "[::1]:8788" -> (host, port); ValueError saying what is wrong."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:8788")
    return host, int(port)


class RecycleConfig(_Strict):
    """`[recycle]`: call again the leads whose received outcome is one of `statuses`."""

    statuses: list[str] = Field(min_length=1)
    after: Duration
    max_calls: int = Field(ge=1, le=20)
    silent_after: Duration | None = None

    @field_validator("statuses")
    @classmethod
    def _normalised(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(normalise_status(status) for status in value))


class CampaignFile(_Strict):
    """The TOML document as written; paths not yet defaulted."""

    api: ApiConfig
    campaign: CampaignConfig
    leads: LeadsConfig
    tools: list[ToolConfig] = Field(default_factory=list)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    notify: NotifyConfig | None = None
    calling_hours: CallingHours | None = None
    outcomes: OutcomesConfig | None = None
    recycle: RecycleConfig | None = None
    storage: StorageConfig | None = None

    @model_validator(mode="after")
    def _recycle_reads_outcomes(self) -> CampaignFile:
        if self.recycle is None:
            return self
        if self.outcomes is None:
            raise ValueError(
                "[recycle] needs [outcomes]: without received outcomes no lead is ever due again"
            )
        if NO_OUTCOME in self.recycle.statuses and self.recycle.silent_after is None:
            raise ValueError(f'recycle.statuses lists "{NO_OUTCOME}", which needs recycle.silent_after')
        return self


NO_OUTCOME = "no-outcome"  # the status a placed lead takes after recycle.silent_after without one


def is_insecure_remote(url: str) -> bool:
    """True for plain http:// to anything but a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True
