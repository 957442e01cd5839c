"""The YAML config: the example file, and every problem named by key path and line."""

from __future__ import annotations

import types
import typing
from datetime import time
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from bridge import registry
from bridge.cadence import DEFAULT_STEPS, QuietHours
from bridge.config import (
    DatabaseSettings,
    MessageSettings,
    SchedulerSettings,
    SecuritySettings,
    ServerSettings,
    Settings,
    WriteBackSettings,
    load_settings,
    parse_settings,
)
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"
EXAMPLE_ENV = {
    "TWILIO_AUTH_TOKEN": "example-auth-token",
    "SENDGRID_API_KEY": "SG.example",
    "BRIDGE_SECRET_KEY": "k" * 32,
}

# Line numbers below count from the first line of each snippet.
MINIMAL = """\
practice:
  name: Riverside Counseling
  contact: "(312) 555-0100"
connectors:
  - name: ehr
    type: sandbox
"""


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, source="c.yaml", env=env or {})
    return info.value.problems


def example_line(fragment: str) -> int:
    """The 1-based line of the example that holds ``fragment`` (exactly one must)."""
    found = [n for n, line in enumerate(EXAMPLE.read_text().splitlines(), 1) if fragment in line]
    assert len(found) == 1, (fragment, found)
    return found[0]


# -- config.example.yaml -------------------------------------------------------------


def test_example_validates_with_only_the_provider_secrets_set() -> None:
    settings = load_settings(EXAMPLE, env=EXAMPLE_ENV)

    assert settings.database.url == "sqlite:///bridge.db"
    assert [(c.name, c.type, c.enabled) for c in settings.connectors] == [("ehr", "sandbox", True)]
    assert settings.channels.sms == "console"
    twilio = settings.channels.twilio
    assert twilio is not None
    assert twilio.account_sid.startswith("AC")
    assert twilio.auth_token.get_secret_value() == "example-auth-token"
    assert twilio.from_number == "+15555550100"
    assert settings.cadence.quiet_hours == QuietHours(start=time(21, 0), end=time(8, 0))
    assert list(settings.cadence.overrides) == ["exposure"]


def test_example_without_secrets_names_each_missing_variable() -> None:
    twilio = example_line("auth_token: ${TWILIO_AUTH_TOKEN}")
    sendgrid = example_line("api_key: ${SENDGRID_API_KEY}")
    secret_key = example_line("secret_key: ${BRIDGE_SECRET_KEY}")
    with pytest.raises(ConfigError) as info:
        load_settings(EXAMPLE, env={})
    assert info.value.problems == [
        f"{EXAMPLE}:{twilio}: channels.twilio.auth_token: "
        "environment variable TWILIO_AUTH_TOKEN is not set",
        f"{EXAMPLE}:{sendgrid}: channels.sendgrid.api_key: "
        "environment variable SENDGRID_API_KEY is not set",
        f"{EXAMPLE}:{secret_key}: security.secret_key: "
        "environment variable BRIDGE_SECRET_KEY is not set",
    ]


def test_example_shows_the_defaults() -> None:
    """The example is what a practice gets when it changes nothing but names and secrets."""
    settings = load_settings(EXAMPLE, env=EXAMPLE_ENV)
    assert settings.database == DatabaseSettings()
    assert settings.server == ServerSettings()
    assert settings.messages == MessageSettings()
    assert settings.scheduler == SchedulerSettings()
    assert settings.writeback == WriteBackSettings()
    assert settings.security.link_ttl_days == SecuritySettings().link_ttl_days
    assert settings.cadence.steps == list(DEFAULT_STEPS)
    assert settings.cadence.quiet_hours == QuietHours()
    sandbox = registry.connector_class("sandbox")
    assert sandbox.Options.model_validate(settings.connectors[0].options) == sandbox.Options()


def _model_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()):
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield path
        yield from _annotation_paths(field.annotation, path)


def _annotation_paths(annotation, path: tuple[str, ...]):
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from _model_paths(annotation, path)
    elif origin is list:
        yield from _annotation_paths(args[0], (*path, "[]"))
    elif origin is dict:
        yield from _annotation_paths(args[1], (*path, "{}"))
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from _annotation_paths(arg, path)


def _present(data, path: tuple[str, ...]) -> bool:
    """Whether the key path exists; ``[]``/``{}`` need a non-empty list/mapping, all items."""
    if not path:
        return True
    head, rest = path[0], path[1:]
    if head == "[]":
        return isinstance(data, list) and bool(data) and all(_present(x, rest) for x in data)
    if head == "{}":
        return (
            isinstance(data, dict) and bool(data) and all(_present(v, rest) for v in data.values())
        )
    return isinstance(data, dict) and head in data and _present(data[head], rest)


def test_every_settings_key_is_in_the_example() -> None:
    """Walk the Settings models: a new setting must be added to config.example.yaml."""
    data = yaml.safe_load(EXAMPLE.read_text())
    paths = list(_model_paths(Settings))
    # the walk reaches nested models, lists of models and dicts of lists of models
    for expected in [
        ("practice", "default_region"),
        ("connectors", "[]", "poll_interval_seconds"),
        ("channels", "twilio", "messaging_service_sid"),
        ("cadence", "steps", "[]", "offset_hours"),
        ("cadence", "overrides", "{}", "[]", "anchor"),
        ("cadence", "quiet_hours", "end"),
        ("writeback", "settle_minutes"),
    ]:
        assert expected in paths

    assert [".".join(p) for p in paths if not _present(data, p)] == []


def test_every_connector_option_is_in_the_example() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    for conn in data["connectors"]:
        options = registry.connector_class(conn["type"]).Options
        assert sorted(conn["options"]) == sorted(options.model_fields)


def test_every_key_in_the_example_has_a_comment() -> None:
    text = EXAMPLE.read_text()
    lines = text.splitlines()
    key_lines: set[int] = set()

    def walk(node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                key_lines.add(key.start_mark.line)
                walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    walk(yaml.compose(text, Loader=yaml.SafeLoader))
    uncommented = [
        n + 1
        for n in sorted(key_lines)
        if "  # " not in lines[n] and not (n and lines[n - 1].lstrip().startswith("# "))
    ]
    assert uncommented == []


def test_example_quotes_quiet_hours() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    assert data["cadence"]["quiet_hours"] == {"start": "21:00", "end": "08:00"}


# -- malformed YAML ------------------------------------------------------------------


def test_bad_indentation_names_file_and_line() -> None:
    text = """\
practice:
  name: Riverside Counseling
  contact: "(312) 555-0100"
 timezone: America/Chicago
connectors:
  - name: ehr
    type: sandbox
"""
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith("c.yaml:4: not valid YAML: ")


def test_unclosed_bracket_names_where_it_opened(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL + "    options: {page_size: 5\nchannels:\n  sms: console\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    [problem] = info.value.problems
    assert problem.startswith(f"{path}:8: not valid YAML: ")
    assert problem.endswith("(while parsing a flow mapping at line 7)")


def test_tab_indentation_names_the_line() -> None:
    [problem] = problems_of(MINIMAL + "channels:\n\tsms: console\n")
    assert problem == "c.yaml:8: not valid YAML: found character '\\t' that cannot start any token"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_top_level_must_be_a_mapping(text) -> None:
    assert problems_of(text) == ["c.yaml: expected a mapping of settings at the top level"]


def test_unreadable_files(tmp_path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(missing)
    assert info.value.problems == [
        f"{missing}: cannot read the config file: No such file or directory"
    ]

    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError) as info:
        load_settings(binary)
    assert info.value.problems == [
        f"{binary}: the config file is not UTF-8 text (invalid start byte)"
    ]


# -- validation problems: dotted key path and line -----------------------------------

WITH_EVERYTHING = """\
practice:
  name: Riverside Counseling
  contact: "(312) 555-0100"
  timezone: {timezone}
  {extra_key}: US
server:
  port: {port}
  public_url: {public_url}
connectors:
  - name: ehr
    type: sandbox
channels:
  sms: console
  twilio:
    account_sid: {account_sid}
    auth_token: secret
    from_number: "+13125550199"
"""
GOOD = {
    "timezone": "America/Chicago",
    "extra_key": "default_region",
    "port": "8000",
    "public_url": "https://bridge.example.org",
    "account_sid": "AC" + "0" * 32,
}
SID_PATTERN = "String should match pattern '^AC[0-9a-fA-F]{32}$'"
BAD = {
    "extra_key": (
        "colour",
        "c.yaml:5: practice.colour: Extra inputs are not permitted",
    ),
    "port": (
        "eighty",
        "c.yaml:7: server.port: Input should be a valid integer, "
        "unable to parse string as an integer",
    ),
    "timezone": (
        "Mars/Olympus_Mons",
        "c.yaml:4: practice.timezone: Value error, unknown time zone 'Mars/Olympus_Mons' "
        "(use an IANA name such as America/Chicago)",
    ),
    "public_url": (
        "bridge.example.org",
        "c.yaml:8: server.public_url: Value error, public_url must start with https:// "
        "(or http:// for local testing)",
    ),
    "account_sid": (
        "AC123",
        f"c.yaml:15: channels.twilio.account_sid: {SID_PATTERN}",
    ),
}


def test_the_template_is_valid_as_is() -> None:
    settings = parse_settings(WITH_EVERYTHING.format(**GOOD), env={})
    assert settings.server.public_url == "https://bridge.example.org"


@pytest.mark.parametrize("key", sorted(BAD))
def test_one_problem_names_key_path_and_line(key) -> None:
    value, expected = BAD[key]
    assert problems_of(WITH_EVERYTHING.format(**{**GOOD, key: value})) == [expected]


def test_every_problem_is_reported_at_once() -> None:
    text = WITH_EVERYTHING.format(**{key: value for key, (value, _) in BAD.items()})
    assert problems_of(text) == [
        BAD["timezone"][1],
        BAD["extra_key"][1],
        BAD["port"][1],
        BAD["public_url"][1],
        BAD["account_sid"][1],
    ]


def test_problems_inside_lists_name_the_index() -> None:
    text = MINIMAL + "    poll_interval_seconds: 0\n  - name: Portal One\n    type: sandbox\n"
    assert problems_of(text) == [
        "c.yaml:7: connectors[0].poll_interval_seconds: Input should be greater than 0",
        "c.yaml:8: connectors[1].name: Value error, use lower-case letters, digits, '-' or '_' "
        "(it becomes a URL path)",
    ]


def test_missing_required_sections() -> None:
    assert problems_of("server:\n  port: 8000\n") == [
        "c.yaml:1: practice: Field required",
        "c.yaml:1: connectors: Field required",
    ]
    assert problems_of(MINIMAL.split("connectors:")[0] + "connectors: []\n") == [
        "c.yaml:4: connectors: List should have at least 1 item after validation, not 0"
    ]


def test_unquoted_quiet_hours_are_refused() -> None:
    text = MINIMAL + 'cadence:\n  quiet_hours:\n    start: 21:00\n    end: "08:00"\n'
    assert problems_of(text) == [
        "c.yaml:9: cadence.quiet_hours.start: Value error, give a time as 'HH:MM' in quotes "
        "(YAML reads an unquoted 21:00 as a number)"
    ]


# -- ${VAR} interpolation and secrets ------------------------------------------------

TWILIO = """\
channels:
  sms: twilio
  twilio:
    account_sid: AC0123456789abcdef0123456789abcdef
    auth_token: ${TWILIO_AUTH_TOKEN}
    from_number: "${FROM_NUMBER:-+13125550199}"
"""


def test_env_var_is_substituted() -> None:
    settings = parse_settings(MINIMAL + TWILIO, env={"TWILIO_AUTH_TOKEN": "tok-123"})
    assert settings.channels.twilio is not None
    assert settings.channels.twilio.auth_token.get_secret_value() == "tok-123"


def test_default_applies_only_when_the_variable_is_unset() -> None:
    env = {"TWILIO_AUTH_TOKEN": "t"}
    unset = parse_settings(MINIMAL + TWILIO, env=env)
    assert unset.channels.twilio is not None
    assert unset.channels.twilio.from_number == "+13125550199"

    set_ = parse_settings(MINIMAL + TWILIO, env={**env, "FROM_NUMBER": "+13125550123"})
    assert set_.channels.twilio is not None
    assert set_.channels.twilio.from_number == "+13125550123"


def test_interpolation_inside_text_with_several_variables() -> None:
    text = MINIMAL.replace(
        'contact: "(312) 555-0100"', 'contact: "${DESK} or ${EMAIL:-desk@example.org}"'
    ).replace("name: Riverside Counseling", "name: ${PRACTICE:-}Riverside")
    settings = parse_settings(text, env={"DESK": "(312) 555-0100"})
    assert settings.practice.contact == "(312) 555-0100 or desk@example.org"
    assert settings.practice.name == "Riverside"


def test_interpolated_numbers_are_coerced() -> None:
    text = MINIMAL + "server:\n  port: ${PORT:-8080}\n"
    assert parse_settings(text, env={}).server.port == 8080
    assert parse_settings(text, env={"PORT": "9000"}).server.port == 9000


def test_missing_env_var_names_key_path_and_line() -> None:
    assert problems_of(MINIMAL + TWILIO) == [
        "c.yaml:11: channels.twilio.auth_token: environment variable TWILIO_AUTH_TOKEN is not set"
    ]


def test_missing_env_var_inside_a_list() -> None:
    text = MINIMAL + "    options:\n      webhook_secret: ${HOOK_SECRET}\n"
    assert problems_of(text) == [
        "c.yaml:8: connectors[0].options.webhook_secret: "
        "environment variable HOOK_SECRET is not set"
    ]


def test_every_missing_variable_is_reported() -> None:
    text = MINIMAL.replace("Riverside Counseling", "${PRACTICE_NAME}") + TWILIO
    assert problems_of(text) == [
        "c.yaml:2: practice.name: environment variable PRACTICE_NAME is not set",
        "c.yaml:11: channels.twilio.auth_token: environment variable TWILIO_AUTH_TOKEN is not set",
    ]


def test_a_missing_variable_is_not_also_reported_as_a_bad_value() -> None:
    text = MINIMAL + "    options:\n      page_size: ${PAGE_SIZE}\nserver:\n  port: ${PORT}\n"
    assert problems_of(text) == [
        "c.yaml:8: connectors[0].options.page_size: environment variable PAGE_SIZE is not set",
        "c.yaml:10: server.port: environment variable PORT is not set",
    ]
    # other problems are still reported with them
    assert problems_of(text + "  host: [1]\n", env={"PAGE_SIZE": "0"}) == [
        "c.yaml:10: server.port: environment variable PORT is not set",
        "c.yaml:11: server.host: Input should be a valid string",
        "c.yaml:8: connectors[0].options.page_size: Input should be greater than or equal to 1",
    ]


def test_secrets_are_secret_and_stay_out_of_repr() -> None:
    text = MINIMAL + "    options:\n      webhook_secret: ${HOOK}\n" + TWILIO
    settings = parse_settings(text, env={"TWILIO_AUTH_TOKEN": "tok-SECRET-1", "HOOK": "hook-S-2"})
    assert settings.channels.twilio is not None
    assert isinstance(settings.channels.twilio.auth_token, SecretStr)
    for shown in (repr(settings), str(settings), repr(settings.connectors)):
        assert "tok-SECRET-1" not in shown
        assert "hook-S-2" not in shown
    # the connector's own Options keep its secret a SecretStr too
    options = registry.connector_class("sandbox").Options.model_validate(
        settings.connectors[0].options
    )
    assert isinstance(options.webhook_secret, SecretStr)
    assert "hook-S-2" not in repr(options)


def test_errors_do_not_echo_secrets() -> None:
    text = MINIMAL + TWILIO.replace('    from_number: "${FROM_NUMBER:-+13125550199}"\n', "")
    problems = problems_of(text, env={"TWILIO_AUTH_TOKEN": "tok-SECRET-1"})
    assert problems == [
        "c.yaml:9: channels.twilio: Value error, set from_number or messaging_service_sid"
    ]
    assert "tok-SECRET-1" not in "\n".join(problems)


# -- connectors ----------------------------------------------------------------------


def test_unknown_connector_lists_the_available_ones_at_the_type_line() -> None:
    text = MINIMAL.replace("type: sandbox", "type: epic")
    assert problems_of(text) == [
        "c.yaml:6: connectors[0].type: unknown connector 'epic'; available: fhir, sandbox"
    ]


def test_unknown_connector_in_a_later_entry() -> None:
    text = MINIMAL + "  - name: portal\n    enabled: false\n    type: simplepractice\n"
    assert problems_of(text) == [
        "c.yaml:9: connectors[1].type: unknown connector 'simplepractice'; available: fhir, sandbox"
    ]


@pytest.mark.parametrize(
    "options, expected",
    [
        ("page_size: 0", "page_size: Input should be greater than or equal to 1"),
        ("page_size: 5000", "page_size: Input should be less than or equal to 1000"),
        ("page_size: lots", "page_size: Input should be a valid integer, unable to parse string"),
        ("colour: blue", "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_connector_options(options, expected) -> None:
    text = MINIMAL + f"    options:\n      {options}\n"
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith(f"c.yaml:8: connectors[0].options.{expected}")


def test_options_must_be_a_mapping() -> None:
    assert problems_of(MINIMAL + "    options: [1, 2]\n") == [
        "c.yaml:7: connectors[0].options: Input should be a valid dictionary"
    ]


def test_duplicate_connector_names_are_refused() -> None:
    text = MINIMAL + "  - name: ehr\n    type: sandbox\n"
    assert problems_of(text) == [
        "c.yaml:4: connectors: Value error, connector names must be unique; repeated: ehr"
    ]


def test_connector_problems_come_with_every_other_problem() -> None:
    text = MINIMAL.replace("type: sandbox", "type: epic") + (
        "  - name: portal\n    type: sandbox\n    options:\n      page_size: 0\n"
        "server:\n  port: 0\n"
    )
    assert problems_of(text) == [
        "c.yaml:12: server.port: Input should be greater than or equal to 1",
        "c.yaml:6: connectors[0].type: unknown connector 'epic'; available: fhir, sandbox",
        "c.yaml:10: connectors[1].options.page_size: Input should be greater than or equal to 1",
    ]


# -- channels ------------------------------------------------------------------------


def test_twilio_channel_needs_its_section() -> None:
    assert problems_of(MINIMAL + "channels:\n  sms: twilio\n") == [
        "c.yaml:7: channels: Value error, sms is 'twilio' but the twilio section is missing"
    ]


def test_unknown_sms_channel() -> None:
    assert problems_of(MINIMAL + "channels:\n  sms: pigeon\n") == [
        "c.yaml:8: channels.sms: Input should be 'console', 'twilio' or 'none'"
    ]


def test_twilio_channel_with_its_section() -> None:
    settings = parse_settings(MINIMAL + TWILIO, env={"TWILIO_AUTH_TOKEN": "t"})
    assert settings.channels.sms == "twilio"
