"""The campaign config: TOML validated by pydantic, with every problem reported at once.

Strings may reference the environment as `${env:NAME}`; the resolved values are remembered as
secrets so that logs can redact them. The API key never comes from the file: `KYZO_API_KEY`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr, ValidationError

from dialer import jsontree
from dialer.config_schema import (
    ApiConfig,
    CampaignConfig,
    CampaignFile,
    LeadsConfig,
    LimitsConfig,
    OutcomesConfig,
    RecycleConfig,
    StorageConfig,
)
from dialer.errors import ConfigError
from dialer.locations import Remote, take_urls
from dialer.logs import hide

if TYPE_CHECKING:
    from dialer.storage import Fetched

API_KEY_ENV = "KYZO_API_KEY"
BASE_URL_ENV = "KYZO_BASE_URL"

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
    report_path: Path
    remote: Remote = field(default_factory=Remote)  # the URLs among the paths above, by role
    fetched: Mapping[str, Fetched] = field(default_factory=dict)  # inputs read from storage, by role

    def shown(self, role: str, path: Path) -> Path | str:
        """Where a file of this role is, as the user named it: its URL when it is in storage."""
        return self.remote.urls.get(role, path)

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
    def storage(self) -> StorageConfig | None:
        return self.file.storage

    @property
    def limits(self) -> LimitsConfig:
        return self.file.limits

    @property
    def outcomes(self) -> OutcomesConfig | None:
        return self.file.outcomes

    @property
    def recycle(self) -> RecycleConfig | None:
        return self.file.recycle

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
    input_path: Path | str | None = None,
    output_path: Path | str | None = None,
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
    problems = list(dict.fromkeys(unresolved)) + _secrets_written_in_the_file(document) + _unset(document)

    if environ.get(BASE_URL_ENV) and isinstance(resolved.get("api"), dict):
        resolved["api"]["base_url"] = environ[BASE_URL_ENV]
    overrides = {k: v for k, v in (limit_overrides or {}).items() if v is not None}
    if overrides and isinstance(resolved.get("limits", {}), dict):
        resolved["limits"] = {**resolved.get("limits", {}), **overrides}

    urls, misplaced = take_urls(resolved, {"leads": input_path, "results": output_path})
    flags = {"leads.path": "--input", "output.path": "--output"}
    problems.extend(Problem(key, message, flags.get(key)) for key, message in misplaced)

    try:
        parsed = CampaignFile.model_validate(resolved)
    except ValidationError as exc:
        # A key whose ${env:} was missing (or whose secret sits in the file) is already explained.
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
    if "results" in urls and "errors" not in urls and out.errors_path is None:
        # results in a bucket: the errors file goes beside them, where the re-upload is made
        folder = urls["results"].rsplit("/", 1)[0]
        urls["errors"] = f"{folder}/{name}.errors{Path(urls['results']).suffix}"
    remote = Remote(urls)
    stand_ins = {role: remote.stand_in(role) for role in urls if role != "do_not_call"}
    api_key = SecretStr(key) if key else None
    if key:
        secrets.add(key)
    return Settings(
        source=path,
        file=parsed,
        api_key=api_key,
        secrets=frozenset(s for s in secrets if s),
        fingerprint=fingerprint,
        results_path=stand_ins.get("results") or Path(output_path or out.path or f"out/{name}.results.csv"),
        errors_path=stand_ins.get("errors") or out.errors_path or Path("out") / f"{name}.errors.csv",
        checkpoint_path=checkpoint_path or out.checkpoint or Path("out") / f"{name}.checkpoint.db",
        leads_path=stand_ins.get("leads") or Path(input_path or parsed.leads.path),
        report_path=stand_ins.get("report") or out.report or Path("out") / f"{name}.report.html",
        remote=remote,
    )


# Keys that hold a secret: their value must come from the environment, never sit in the file.
SECRET_KEYS = (("outcomes", "token"),)


def _unset(document: Mapping[str, Any]) -> list[Problem]:
    """Values `dialer init` could not fill, written as "<unset: what to give>"."""
    problems: list[Problem] = []

    def visit(leaf: Any, where: jsontree.Path) -> Any:
        if isinstance(leaf, str) and leaf.startswith("<unset:"):
            hint = leaf.removeprefix("<unset:").rstrip(">").strip()
            problems.append(Problem(jsontree.dotted(where), f"is not set yet: give {hint}"))
        return leaf

    jsontree.map_leaves(document, visit)
    return problems


def _secrets_written_in_the_file(document: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for table, key in SECRET_KEYS:
        value = document.get(table, {}).get(key) if isinstance(document.get(table), dict) else None
        if isinstance(value, str) and not _ENV_REF.fullmatch(value.strip()):
            problems.append(
                Problem(
                    f"{table}.{key}",
                    'is a secret: write it as "${env:NAME}" and export NAME, so it is never on disk',
                )
            )
    return problems


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
