"""The campaign config: TOML validated by pydantic, with every problem reported at once.

Strings may reference the environment as `${env:NAME}`; the resolved values are remembered as
secrets so that logs can redact them. The API key never comes from the file: `KYZO_API_KEY`.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from dialer import jsontree
from dialer.errors import ConfigError
from dialer.hours import CallingHours
from dialer.logs import hide

API_KEY_ENV = "KYZO_API_KEY"
BASE_URL_ENV = "KYZO_BASE_URL"
MAX_CALLS_PER_SECOND = 10_000.0
ToolType = Literal["sentiment", "custom_field_extraction", "email", "whatsapp", "calendar", "webhook"]
TOOL_TYPES: tuple[str, ...] = get_args(ToolType)

_ENV_REF = re.compile(r"\$\{env:([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config, tied to the key it is about."""

    key: str | None  # dotted, e.g. "limits.calls_per_second"; None: the environment, not the file
    message: str
    flag: str | None = None  # the command-line flag that gave the value, when one did

    def __str__(self) -> str:
        given = f" (given as {self.flag})" if self.flag else ""
        return f"{self.key}: {self.message}{given}" if self.key else f"{self.message}{given}"


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


@dataclass(frozen=True)
class Settings:
    """Everything a run needs: the validated file plus environment and command-line overrides."""

    source: Path
    file: CampaignFile
    api_key: SecretStr | None
    secrets: frozenset[str]
    fingerprint: str
    results_path: Path
    errors_path: Path
    checkpoint_path: Path
    leads_path: Path

    def __repr__(self) -> str:
        # The parsed file holds resolved ${env:...} values: keep them out of any repr.
        return f"Settings(source={str(self.source)!r}, campaign={self.file.campaign.name!r})"

    @property
    def api(self) -> ApiConfig:
        return self.file.api

    @property
    def campaign(self) -> CampaignConfig:
        return self.file.campaign

    @property
    def leads(self) -> LeadsConfig:
        return self.file.leads

    @property
    def limits(self) -> LimitsConfig:
        return self.file.limits

    def require_api_key(self) -> SecretStr:
        if self.api_key is None:
            raise ConfigError(
                str(self.source),
                [f"the environment variable {API_KEY_ENV} is not set: export the Kyzo API key"],
            )
        return self.api_key


def load_settings(
    path: Path,
    *,
    env: Mapping[str, str] | None = None,
    input_path: Path | None = None,
    output_path: Path | None = None,
    checkpoint_path: Path | None = None,
    limit_overrides: Mapping[str, float | int | None] | None = None,
) -> Settings:
    """Read, resolve and validate a campaign file; raise ConfigError listing every problem."""
    environ = os.environ if env is None else env
    source = str(path)
    try:
        raw_text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        document = tomllib.loads(raw_text.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(source, ["the file is not UTF-8 text; save it as UTF-8"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None

    fingerprint = hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()
    secrets: set[str] = set()
    unresolved: list[Problem] = []
    resolved = _resolve_env(document, environ, secrets, unresolved)
    problems = list(dict.fromkeys(unresolved))

    if environ.get(BASE_URL_ENV) and isinstance(resolved.get("api"), dict):
        resolved["api"]["base_url"] = environ[BASE_URL_ENV]
    overrides = {k: v for k, v in (limit_overrides or {}).items() if v is not None}
    if overrides and isinstance(resolved.get("limits", {}), dict):
        resolved["limits"] = {**resolved.get("limits", {}), **overrides}

    try:
        parsed = CampaignFile.model_validate(resolved)
    except ValidationError as exc:
        # A key whose ${env:} was missing is already explained; its empty value's error is noise.
        explained = {problem.key for problem in problems}
        # The user typed a flag, not the key: say so.
        flags = {f"limits.{name}": "--" + name.replace("_", "-") for name in overrides}
        problems.extend(
            replace(problem, flag=flags.get(problem.key or ""))
            for problem in _describe(exc)
            if problem.key not in explained
        )
    key = environ.get(API_KEY_ENV)
    if key and not (key.isascii() and key.isprintable() and key == key.strip()):
        problems.append(
            Problem(
                None,
                f"the environment variable {API_KEY_ENV} contains whitespace, a control character or a "
                "non-ASCII character (often a newline or \\r read from a file): export the bare key",
            )
        )
    if problems:
        # A message may quote a value built from ${env:...}; logs cannot redact what they never saw.
        raise ConfigError(source, [hide(str(problem), secrets) for problem in problems])

    name = parsed.campaign.name
    out = parsed.output
    api_key = SecretStr(key) if key else None
    if key:
        secrets.add(key)
    return Settings(
        source=path,
        file=parsed,
        api_key=api_key,
        secrets=frozenset(s for s in secrets if s),
        fingerprint=fingerprint,
        results_path=output_path or out.path or Path("out") / f"{name}.results.csv",
        errors_path=out.errors_path or Path("out") / f"{name}.errors.csv",
        checkpoint_path=checkpoint_path or out.checkpoint or Path("out") / f"{name}.checkpoint.db",
        leads_path=input_path or parsed.leads.path,
    )


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


def _resolve_env(
    document: dict[str, Any], environ: Mapping[str, str], secrets: set[str], problems: list[Problem]
) -> dict[str, Any]:
    """Every `${env:NAME}` replaced by its value, remembered as a secret; a missing one a problem."""

    def resolve(value: Any, where: jsontree.Path) -> Any:
        if not isinstance(value, str) or "${env:" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if not _ENV_NAME.fullmatch(name):
                problems.append(
                    Problem(jsontree.dotted(where), f"'${{env:{name}}}' is not a valid variable name")
                )
                return ""
            if name not in environ:
                problems.append(
                    Problem(
                        jsontree.dotted(where),
                        f"the environment variable {name} is not set (referenced as ${{env:{name}}})",
                    )
                )
                return ""
            secrets.add(environ[name])
            return environ[name]

        return _ENV_REF.sub(substitute, value)

    resolved: dict[str, Any] = jsontree.map_leaves(document, resolve)
    return resolved


def _describe(exc: ValidationError) -> list[Problem]:
    """Turn pydantic errors into problems that name the key and say what to do."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        key = jsontree.dotted(error["loc"])
        if error["type"] == "extra_forbidden":
            hint = _did_you_mean(str(error["loc"][-1]), _known_keys(error["loc"][:-1]))
            problems.append(Problem(key, f"unknown key{hint}"))
        elif error["type"] == "missing":
            problems.append(Problem(key, "required key is missing"))
        else:
            problems.append(Problem(key, error["msg"].removeprefix("Value error, ")))
    return problems


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] | None = CampaignFile
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        model = _model_in(annotation)
    return list(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found:
            return found
    return None


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (known keys: {', '.join(known)})" if known else ""
