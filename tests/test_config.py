"""Campaign config: loading, environment, validation messages and the fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from dialer.config import Settings, load_settings
from dialer.config_schema import TOOL_TYPES
from dialer.errors import ConfigError

BASE = """\
[api]
base_url = "https://api.kyzo.example/v1"
organization_id = "org_1"

[campaign]
name = "spring-2025"
agent_id = "agent_1"
from_phone_number_id = "pn_1"

[leads]
path = "leads.csv"
default_region = "US"

[leads.columns]
phone = "phone"
email = "email"
reference_id = "crm_id"

[leads.agent_params]
first_name = "first_name"
city = "city"
"""

BASE_URL_LINE = 'base_url = "https://api.kyzo.example/v1"'

# One [[tools]] block per tool type, with the args the contract lists for it.
TOOL_BLOCKS = {
    "sentiment": 'args = { language = "English" }',
    "custom_field_extraction": (
        'args = { fields = [{ fieldName = "budget", fieldDescription = "Budget in USD", '
        'fieldType = "number" }] }'
    ),
    "email": 'args = { subject = "Thanks, {{ first_name }}", body = "<p>Hi ${first_name}</p>" }',
    "whatsapp": (
        'args = { CLIENT_WHATSAPP_PHONE_NUMBER = "+19999999999", customerName = "${first_name}", '
        'campaignName = "Spring" }'
    ),
    "calendar": (
        'args = { event_title = "Viewing", start_time = "2025-05-01T10:00:00Z", '
        'end_time = "2025-05-01T10:30:00Z" }'
    ),
    "webhook": (
        'args = { webhook_url = "https://hooks.example/x", method = "POST", '
        'headers = { Authorization = "Bearer t" }, filters = [], timeout = 5 }'
    ),
}


def swap(old: str, new: str, text: str = BASE) -> str:
    """Replace one line of the base config, failing loudly if the line is not there."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "campaign.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str = BASE, env: Mapping[str, str] | None = None, **kwargs: Any) -> Settings:
    return load_settings(write(tmp_path, text), env=dict(env or {}), **kwargs)


def problems(tmp_path: Path, text: str | bytes, env: Mapping[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=dict(env or {}))
    return info.value.problems


def tool(tool_type: str, args_line: str, order: int = 0) -> str:
    return f'\n[[tools]]\ntool_type = "{tool_type}"\nexecution_order = {order}\n{args_line}\n'


# ---------------------------------------------------------------- loading and paths


def test_minimal_config_loads(tmp_path: Path) -> None:
    """A minimal valid file loads with its values and the documented defaults."""
    settings = load(tmp_path)
    assert settings.source == tmp_path / "campaign.toml"
    assert settings.api.base_url == "https://api.kyzo.example/v1"
    assert settings.api.organization_id == "org_1"
    assert settings.campaign.agent_id == "agent_1"
    assert settings.campaign.from_phone_number_id == "pn_1"
    assert settings.leads.columns.phone == "phone"
    assert settings.leads.agent_params == {"first_name": "first_name", "city": "city"}
    assert settings.leads.dedupe == "phone"
    assert settings.limits.calls_per_second == 5.0
    assert settings.limits.max_concurrency == 10
    assert settings.file.tools == []
    assert settings.api_key is None
    assert settings.secrets == frozenset()


def test_default_paths_derive_from_campaign_name(tmp_path: Path) -> None:
    """Without [output] or overrides, outputs are out/<campaign.name>.* and input is leads.path."""
    settings = load(tmp_path)
    assert settings.results_path == Path("out/spring-2025.results.csv")
    assert settings.errors_path == Path("out/spring-2025.errors.csv")
    assert settings.checkpoint_path == Path("out/spring-2025.checkpoint.db")
    assert settings.leads_path == Path("leads.csv")


def test_output_section_replaces_default_paths(tmp_path: Path) -> None:
    """Paths written under [output] replace the name-derived defaults."""
    text = BASE + '\n[output]\npath = "r.parquet"\nerrors_path = "e.csv"\ncheckpoint = "c.db"\n'
    settings = load(tmp_path, text)
    assert settings.results_path == Path("r.parquet")
    assert settings.errors_path == Path("e.csv")
    assert settings.checkpoint_path == Path("c.db")


def test_command_line_paths_win_over_file_and_defaults(tmp_path: Path) -> None:
    """--input, --output and --checkpoint beat both [output] and leads.path."""
    text = BASE + '\n[output]\npath = "r.csv"\nerrors_path = "e.csv"\ncheckpoint = "c.db"\n'
    settings = load(
        tmp_path,
        text,
        input_path=Path("in/other.csv"),
        output_path=Path("elsewhere/results.csv"),
        checkpoint_path=Path("elsewhere/state.db"),
    )
    assert settings.leads_path == Path("in/other.csv")
    assert settings.results_path == Path("elsewhere/results.csv")
    assert settings.checkpoint_path == Path("elsewhere/state.db")
    assert settings.errors_path == Path("e.csv")


def test_limit_overrides_win_and_none_is_ignored(tmp_path: Path) -> None:
    """Command-line limits replace the file's; a None override leaves the file's value."""
    text = BASE + "\n[limits]\ncalls_per_second = 2.0\nmax_concurrency = 3\n"
    settings = load(tmp_path, text, limit_overrides={"calls_per_second": 7.5, "max_concurrency": None})
    assert settings.limits.calls_per_second == 7.5
    assert settings.limits.max_concurrency == 3


def test_limit_override_out_of_range_is_a_config_error(tmp_path: Path) -> None:
    """An out-of-range command-line limit is reported like a bad file value."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, limit_overrides={"calls_per_second": 0})
    assert [p.split(":")[0] for p in info.value.problems] == ["limits.calls_per_second"]


# ---------------------------------------------------------------- environment


def test_base_url_env_overrides_file(tmp_path: Path) -> None:
    """KYZO_BASE_URL replaces api.base_url (trailing slash dropped)."""
    settings = load(tmp_path, env={"KYZO_BASE_URL": "https://staging.kyzo.example/v2/"})
    assert settings.api.base_url == "https://staging.kyzo.example/v2"


def test_base_url_env_is_validated_like_the_file(tmp_path: Path) -> None:
    """A plain-http remote KYZO_BASE_URL is refused just as in the file."""
    found = problems(tmp_path, BASE, env={"KYZO_BASE_URL": "http://kyzo.example"})
    assert len(found) == 1
    assert "base_url http://kyzo.example is plain http://" in found[0]


def test_api_key_from_env_is_a_secret(tmp_path: Path) -> None:
    """KYZO_API_KEY becomes a SecretStr, is masked in str() and is listed in settings.secrets."""
    settings = load(tmp_path, env={"KYZO_API_KEY": "sk-live-1234"})
    assert isinstance(settings.api_key, SecretStr)
    assert settings.api_key.get_secret_value() == "sk-live-1234"
    assert "sk-live-1234" not in str(settings.api_key)
    assert settings.require_api_key().get_secret_value() == "sk-live-1234"
    assert settings.secrets == frozenset({"sk-live-1234"})


@pytest.mark.parametrize("env", [{}, {"KYZO_API_KEY": ""}], ids=["unset", "empty"])
def test_missing_api_key_raises_naming_the_variable(tmp_path: Path, env: dict[str, str]) -> None:
    """An unset or empty KYZO_API_KEY loads, but require_api_key() raises naming the variable."""
    settings = load(tmp_path, env=env)
    assert settings.api_key is None
    with pytest.raises(ConfigError, match="KYZO_API_KEY") as info:
        settings.require_api_key()
    assert len(info.value.problems) == 1


def test_env_reference_inside_tool_args_is_substituted_and_secret(tmp_path: Path) -> None:
    """${env:NAME} is replaced inside any string, nested or not, and the values become secrets."""
    args = (
        'args = { webhook_url = "https://hooks.example/${env:HOOK_PATH}/in", method = "POST", '
        'headers = { Authorization = "Bearer ${env:HOOK_TOKEN}" }, '
        'filters = ["${env:HOOK_PATH}-${env:HOOK_TOKEN}"], timeout = 5 }'
    )
    env = {"HOOK_TOKEN": "tok-9f8e", "HOOK_PATH": "p42", "UNUSED": "nope"}
    settings = load(tmp_path, BASE + tool("webhook", args), env=env)
    assert settings.file.tools[0].args == {
        "webhook_url": "https://hooks.example/p42/in",
        "method": "POST",
        "headers": {"Authorization": "Bearer tok-9f8e"},
        "filters": ["p42-tok-9f8e"],
        "timeout": 5,
    }
    assert settings.secrets == frozenset({"tok-9f8e", "p42"})


def test_env_reference_outside_tools_is_substituted(tmp_path: Path) -> None:
    """${env:NAME} works in any string of the file, not only in tool args."""
    text = swap('organization_id = "org_1"', 'organization_id = "org_${env:ORG}"')
    settings = load(tmp_path, text, env={"ORG": "acme"})
    assert settings.api.organization_id == "org_acme"
    assert settings.secrets == frozenset({"acme"})


def test_missing_env_reference_names_variable_and_key(tmp_path: Path) -> None:
    """A ${env:NAME} whose variable is unset is a ConfigError naming the variable and key path."""
    args = 'args = { headers = { Authorization = "Bearer ${env:HOOK_TOKEN}" } }'
    found = problems(tmp_path, BASE + tool("webhook", args), env={"OTHER": "x"})
    assert found == [
        "tools[0].args.headers.Authorization: the environment variable HOOK_TOKEN is not set "
        "(referenced as ${env:HOOK_TOKEN})"
    ]


def test_missing_env_for_a_whole_value_is_one_problem(tmp_path: Path) -> None:
    """agent_id = "${env:AGENT}" unset: one line naming the variable, not also "at least 1 character"."""
    found = problems(tmp_path, swap('agent_id = "agent_1"', 'agent_id = "${env:AGENT}"'))
    assert found == [
        "campaign.agent_id: the environment variable AGENT is not set (referenced as ${env:AGENT})"
    ]


@pytest.mark.parametrize("name", ["1BAD", "", "A-B"])
def test_invalid_env_variable_name_is_refused(tmp_path: Path, name: str) -> None:
    """${env:...} with a name that is not a variable name is reported with its key."""
    text = swap('agent_id = "agent_1"', f'agent_id = "a${{env:{name}}}"')
    found = problems(tmp_path, text, env={name: "x"})
    assert found == [f"campaign.agent_id: '${{env:{name}}}' is not a valid variable name"]


# ---------------------------------------------------------------- validation messages


def test_typo_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    """An unknown key is reported by its dotted path with a did-you-mean for the closest known key."""
    found = problems(tmp_path, BASE + "\n[limits]\ncalls_per_secnd = 3\n")
    assert found == ["limits.calls_per_secnd: unknown key (did you mean calls_per_second?)"]


def test_unknown_key_without_near_match_lists_known_keys(tmp_path: Path) -> None:
    """An unknown key with no close match lists the keys allowed at that level."""
    found = problems(tmp_path, swap('agent_id = "agent_1"', 'agent_id = "agent_1"\nzzz = 1'))
    assert found == ["campaign.zzz: unknown key (known keys: name, agent_id, from_phone_number_id)"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Typos, bad values, bad tool types and missing variables all appear in one ConfigError."""
    text = swap('organization_id = "org_1"', 'organization_id = "${env:ORG}x"')
    text += "\n[limits]\ncalls_per_secnd = 3\nmax_concurrency = 0\n"
    text += tool("sms", "args = {}")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env={})
    keys = sorted(p.split(":")[0] for p in info.value.problems)
    assert keys == [
        "api.organization_id",
        "limits.calls_per_secnd",
        "limits.max_concurrency",
        "tools[0].tool_type",
    ]
    assert len(info.value.problems) == 4
    assert "the campaign config has 4 problems" in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"[api\nbase_url = 1\n", id="unclosed-table"),
        pytest.param(b"name: spring\nagent: x\n", id="yaml"),
        pytest.param(b'{"api": {}}', id="json"),
    ],
)
def test_text_that_is_not_toml_is_refused(tmp_path: Path, content: bytes) -> None:
    """A file that does not parse as TOML is one ConfigError saying so."""
    found = problems(tmp_path, content)
    assert len(found) == 1
    assert found[0].startswith("not valid TOML: ")


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    """A latin-1 encoded file is a ConfigError asking for UTF-8."""
    content = swap('name = "spring-2025"', 'name = "printemps"\n# café').encode("latin-1")
    assert problems(tmp_path, content) == ["the file is not UTF-8 text; save it as UTF-8"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is a ConfigError carrying the path."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.source == str(path)
    assert info.value.problems[0].startswith("cannot read the file")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("", '[limits]\nmax_concurrency = "ten"', "limits.max_concurrency"),
        ("", "[limits]\ncalls_per_second = [5]", "limits.calls_per_second"),
        ("", "[limits]\nmax_attempts = 2.5", "limits.max_attempts"),
        ("", '[limits]\nrequest_timeout_s = "soon"', "limits.request_timeout_s"),
        ('name = "spring-2025"', "name = 2025", "campaign.name"),
        ('name = "spring-2025"', 'name = "../escape"', "campaign.name"),
        ('organization_id = "org_1"', 'organization_id = ""', "api.organization_id"),
        (
            'organization_id = "org_1"',
            'organization_id = "org_1"\nretry_ambiguous = "maybe"',
            "api.retry_ambiguous",
        ),
        ('default_region = "US"', 'default_region = "usa"', "leads.default_region"),
        ('default_region = "US"', 'default_region = "US"\ndedupe = "email"', "leads.dedupe"),
        ('phone = "phone"', "phone = 1", "leads.columns.phone"),
        ('city = "city"', "city = 3", "leads.agent_params.city"),
        ('base_url = "https://api.kyzo.example/v1"', 'base_url = "api.kyzo.example"', "api.base_url"),
        ("", "[[tools]]\ntool_type = 'email'\nexecution_order = -1", "tools[0].execution_order"),
        ("", "[[tools]]\ntool_type = 'email'\nexecution_order = 0\nargs = 'x'", "tools[0].args"),
        ("", tool("calendar", "args = { start_time = 2025-05-01T10:00:00Z }"), "tools[0].args"),
        ("", tool("calendar", "args = { day = 2025-05-01 }"), "tools[0].args"),
        ("", tool("webhook", "args = { timeout = nan }"), "tools[0].args"),
    ],
)
def test_wrong_value_is_named_by_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    """A value of the wrong type or shape is one ConfigError problem that names its key."""
    text = BASE + "\n" + new + "\n" if not old else swap(old, new)
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(f"{key}: "), found


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("calls_per_second", "0"),
        ("calls_per_second", "-1.5"),
        ("calls_per_second", "10000.001"),
        ("calls_per_second", "1e6"),
        ("calls_per_second", "inf"),
        ("calls_per_second", "nan"),
        ("max_concurrency", "0"),
        ("max_concurrency", "-3"),
        ("max_attempts", "0"),
        ("request_timeout_s", "0"),
        ("request_timeout_s", "-1"),
        ("max_retry_after_s", "0"),
        ("breaker_ratio", "0"),
        ("breaker_ratio", "1.5"),
    ],
)
def test_out_of_range_limit_is_refused(tmp_path: Path, key: str, value: str) -> None:
    """Zero, negative, too-large and non-finite limits are refused naming the limit."""
    found = problems(tmp_path, BASE + f"\n[limits]\n{key} = {value}\n")
    assert len(found) == 1
    assert found[0].startswith(f"limits.{key}: ")


@pytest.mark.parametrize("value", [0.01, 1, 10000])
def test_calls_per_second_bounds_are_inclusive_at_the_top(tmp_path: Path, value: float) -> None:
    """calls_per_second accepts any positive rate up to and including 10000."""
    settings = load(tmp_path, BASE + f"\n[limits]\ncalls_per_second = {value}\n")
    assert settings.limits.calls_per_second == value


# ---------------------------------------------------------------- transport security


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8787", True),
        ("http://127.0.0.2", True),
        ("http://localhost:8787", True),
        ("http://[::1]:8787", True),
        ("https://api.kyzo.example/v1", True),
        ("https://10.0.0.5", True),
        ("http://api.kyzo.example/v1", False),
        ("http://10.0.0.5:8080", False),
        ("http://0.0.0.0:8787", False),
        ("http://[2001:db8::1]", False),
    ],
)
def test_plain_http_is_only_allowed_to_loopback(tmp_path: Path, url: str, allowed: bool) -> None:
    """http:// is accepted only for loopback hosts; https:// is accepted anywhere."""
    text = swap(BASE_URL_LINE, f'base_url = "{url}"')
    if allowed:
        assert load(tmp_path, text).api.base_url == url.rstrip("/")
    else:
        found = problems(tmp_path, text)
        assert len(found) == 1
        assert "plain http:// to a non-loopback host" in found[0]
        assert "api.allow_insecure_http = true" in found[0]


def test_allow_insecure_http_permits_remote_http(tmp_path: Path) -> None:
    """api.allow_insecure_http = true lets plain http:// reach a remote host."""
    text = swap(BASE_URL_LINE, 'base_url = "http://api.kyzo.example/v1"\nallow_insecure_http = true')
    settings = load(tmp_path, text)
    assert settings.api.base_url == "http://api.kyzo.example/v1"
    assert settings.api.allow_insecure_http is True


# ---------------------------------------------------------------- tools and leads


@pytest.mark.parametrize("tool_type", TOOL_TYPES)
def test_every_contract_tool_type_is_accepted(tmp_path: Path, tool_type: str) -> None:
    """Each of the six tool types of the Kyzo contract loads with its documented args."""
    settings = load(tmp_path, BASE + tool(tool_type, TOOL_BLOCKS[tool_type], order=3))
    (loaded,) = settings.file.tools
    assert loaded.tool_type == tool_type
    assert loaded.execution_order == 3


def test_contract_has_six_tool_types() -> None:
    """The accepted tool types are exactly the six the contract lists."""
    assert sorted(TOOL_TYPES) == sorted(TOOL_BLOCKS)


@pytest.mark.parametrize("tool_type", ["sms", "Webhook", ""])
def test_unknown_tool_type_is_refused(tmp_path: Path, tool_type: str) -> None:
    """A tool_type outside the contract is a ConfigError naming tools[i].tool_type."""
    text = BASE + tool("sentiment", TOOL_BLOCKS["sentiment"]) + tool(tool_type, "args = {}", order=1)
    found = problems(tmp_path, text)
    assert len(found) == 1
    assert found[0].startswith("tools[1].tool_type: Input should be 'sentiment'")


def test_required_must_name_agent_params(tmp_path: Path) -> None:
    """leads.required naming something that is not an agent_params key is refused, naming it."""
    text = swap('default_region = "US"', 'default_region = "US"\nrequired = ["first_name", "budget"]')
    found = problems(tmp_path, text)
    assert len(found) == 1
    assert found[0].startswith("leads: required names ['budget'] are not keys of [leads.agent_params]")


def test_required_naming_agent_params_loads(tmp_path: Path) -> None:
    """leads.required listing agent_params keys is accepted."""
    text = swap('default_region = "US"', 'default_region = "US"\nrequired = ["first_name"]')
    assert load(tmp_path, text).leads.required == ["first_name"]


def test_dedupe_by_reference_needs_a_reference_column(tmp_path: Path) -> None:
    """dedupe = "reference_id" without leads.columns.reference_id is refused."""
    text = swap('reference_id = "crm_id"', "")
    text = swap('default_region = "US"', 'default_region = "US"\ndedupe = "reference_id"', text)
    found = problems(tmp_path, text)
    assert found == ['leads: dedupe = "reference_id" needs leads.columns.reference_id']


# ---------------------------------------------------------------- fingerprint


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('name = "spring-2025"', 'name = "spring-2026"'),
        ('agent_id = "agent_1"', 'agent_id = "agent_2"'),
        ('city = "city"', 'city = "town"'),
        ('default_region = "US"', 'default_region = "CA"'),
    ],
)
def test_fingerprint_changes_with_the_config(tmp_path: Path, old: str, new: str) -> None:
    """Any change of a config value changes the fingerprint."""
    before = load(tmp_path).fingerprint
    after = load(tmp_path, swap(old, new)).fingerprint
    assert before != after


def test_fingerprint_changes_with_tool_args(tmp_path: Path) -> None:
    """Editing a tool argument changes the fingerprint."""
    one = load(tmp_path, BASE + tool("sentiment", 'args = { language = "English" }')).fingerprint
    two = load(tmp_path, BASE + tool("sentiment", 'args = { language = "Spanish" }')).fingerprint
    assert one != two


def test_fingerprint_ignores_resolved_environment(tmp_path: Path) -> None:
    """Same file under different env values (refs, key, base URL) has the same fingerprint."""
    text = BASE + tool("webhook", 'args = { headers = { Authorization = "Bearer ${env:HOOK_TOKEN}" } }')
    first = load(tmp_path, text, env={"HOOK_TOKEN": "alpha-secret", "KYZO_API_KEY": "k1"})
    second = load(
        tmp_path,
        text,
        env={"HOOK_TOKEN": "beta-secret", "KYZO_API_KEY": "k2", "KYZO_BASE_URL": "https://b.example"},
    )
    assert first.fingerprint == second.fingerprint
    assert "alpha-secret" not in first.fingerprint
    assert len(first.fingerprint) == 64
    assert first.file.tools[0].args != second.file.tools[0].args


def test_ca_bundle_is_checked_when_the_config_loads(tmp_path: Path) -> None:
    """A missing or unreadable CA bundle is a config error naming api.ca_bundle, not a mid-run traceback."""
    import certifi

    line = 'organization_id = "org_1"'
    good = load(tmp_path, swap(line, f'{line}\nca_bundle = "{certifi.where()}"'))
    assert good.api.ca_bundle == Path(certifi.where())

    missing = problems(tmp_path, swap(line, f'{line}\nca_bundle = "{tmp_path / "nope.pem"}"'))
    assert len(missing) == 1
    assert missing[0].startswith("api.ca_bundle: cannot load the CA bundle")
    assert "No such file" in missing[0]

    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    junk = problems(tmp_path, swap(line, f'{line}\nca_bundle = "{tmp_path / "junk.pem"}"'))
    assert junk[0].startswith("api.ca_bundle: cannot load the CA bundle")


@pytest.mark.parametrize("key", ["test-key\r", "test-key\n", " test-key", "tëst-key", "test\x00key"])
def test_api_key_with_stray_characters_is_refused_without_echoing_it(tmp_path: Path, key: str) -> None:
    """A key read from a CRLF file ends in \\r: refused up front (aiohttp would raise mid-run)."""
    found = problems(tmp_path, BASE, env={"KYZO_API_KEY": key})
    assert len(found) == 1
    assert "KYZO_API_KEY contains whitespace, a control character or a non-ASCII character" in found[0]
    assert key.strip() not in found[0]


def test_a_bad_flag_override_names_the_flag(tmp_path: Path) -> None:
    """--calls-per-second 0 is reported against the flag the user typed, not only the config key."""
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, BASE), env={}, limit_overrides={"calls_per_second": 0.0})
    assert info.value.problems == [
        "limits.calls_per_second: Input should be greater than 0 (given as --calls-per-second)"
    ]
