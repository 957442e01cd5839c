"""Typed settings from one YAML file.

Secrets come from the environment through ``${VAR}`` (or ``${VAR:-default}``). Every
problem in a file is reported at once, each naming its key path and line, before the
bridge touches anything.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bridge.cadence import CadencePolicy
from bridge.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as America/Chicago)"
        ) from None
    return value


class PracticeSettings(_Section):
    name: str = Field(min_length=1)
    timezone: str = "America/New_York"
    contact: str = Field(min_length=1, description="phone or email given to clients who text HELP")
    default_language: Literal["en", "es"] = "en"
    default_region: str = Field("US", min_length=2, max_length=2)

    _tz = field_validator("timezone")(check_timezone)


class DatabaseSettings(_Section):
    url: str = "sqlite:///bridge.db"


class ServerSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)
    public_url: str | None = None
    admin_token: SecretStr | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("public_url must start with https:// (or http:// for local testing)")
        return value.rstrip("/")


class ConnectorSettings(_Section):
    name: str
    type: str
    enabled: bool = True
    poll_interval_seconds: float = Field(300, gt=0)
    # Validated by the plugin's own Options model; may hold secrets, so never in a repr.
    options: dict[str, Any] = Field(default_factory=dict, repr=False)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use lower-case letters, digits, '-' or '_' (it becomes a URL path)")
        return value


class TwilioSettings(_Section):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    from_number: str | None = None
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")
    timeout_seconds: float = Field(10, gt=0)
    api_base_url: str = Field("https://api.twilio.com", pattern=r"^https?://[^/]+$")

    @model_validator(mode="after")
    def _sender(self) -> TwilioSettings:
        if not self.from_number and not self.messaging_service_sid:
            raise ValueError("set from_number or messaging_service_sid")
        return self


class SendGridSettings(_Section):
    api_key: SecretStr
    from_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    from_name: str | None = None
    event_webhook_public_key: str | None = Field(
        None, description="the base64 ECDSA key shown under Mail Settings > Signed Event Webhook"
    )
    timeout_seconds: float = Field(10, gt=0)


class ChannelSettings(_Section):
    sms: Literal["console", "twilio", "none"] = "console"
    email: Literal["console", "sendgrid", "none"] = "none"
    twilio: TwilioSettings | None = None
    sendgrid: SendGridSettings | None = None

    @model_validator(mode="after")
    def _provider_present(self) -> ChannelSettings:
        if self.sms == "twilio" and self.twilio is None:
            raise ValueError("sms is 'twilio' but the twilio section is missing")
        if self.email == "sendgrid" and self.sendgrid is None:
            raise ValueError("email is 'sendgrid' but the sendgrid section is missing")
        return self


class SecuritySettings(_Section):
    secret_key: SecretStr | None = Field(
        None, description="signs client links; shared by every replica; 32+ characters"
    )
    link_ttl_days: float = Field(14, gt=0, le=90)

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("secret_key must be at least 32 characters")
        return value


class MessageSettings(_Section):
    include_title: bool = False
    templates_dir: str | None = None


class SchedulerSettings(_Section):
    dispatch_interval_seconds: float = Field(30, gt=0)
    writeback_interval_seconds: float = Field(60, gt=0)
    batch_size: int = Field(200, ge=1, le=5000)
    send_concurrency: int = Field(20, ge=1, le=64)
    lease_seconds: float = Field(120, gt=0)
    max_send_attempts: int = Field(5, ge=1)
    retry_backoff_seconds: float = Field(300, gt=0)
    unknown_outcome_wait_seconds: float = Field(900, gt=0)
    retry_jitter: float = Field(0.2, ge=0, le=1)


class WriteBackSettings(_Section):
    enabled: bool = True
    missed_after_hours: float = Field(24, ge=0)
    settle_minutes: float = Field(30, ge=0)
    max_attempts: int = Field(8, ge=1)


class Settings(_Section):
    practice: PracticeSettings
    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    connectors: list[ConnectorSettings] = Field(min_length=1)
    channels: ChannelSettings = ChannelSettings()
    cadence: CadencePolicy = CadencePolicy()
    messages: MessageSettings = MessageSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    writeback: WriteBackSettings = WriteBackSettings()
    security: SecuritySettings = SecuritySettings()

    @field_validator("connectors")
    @classmethod
    def _unique_connector_names(cls, value: list[ConnectorSettings]) -> list[ConnectorSettings]:
        names = [c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"connector names must be unique; repeated: {', '.join(dupes)}")
        return value


# -- loading -------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _lines(node: yaml.Node, path: Path_ = (), out: dict[Path_, int] | None = None) -> dict:
    """Map every key path in the YAML tree to its 1-based line."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            out[child] = key.start_mark.line + 1
            _lines(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _lines(item, (*path, i), out)
    return out


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def _interpolate(value: Any, env: dict[str, str], path: Path_, missing: list[Path_]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, i), missing) for i, v in enumerate(value)]
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append((*path, f"${{{name}}}"))
            return ""

        return _ENV.sub(sub, value)
    return value


def parse_settings(
    text: str, *, source: str = "config", env: dict[str, str] | None = None
) -> Settings:
    """Validate YAML text into Settings, or raise ConfigError listing every problem."""
    env = dict(os.environ) if env is None else env
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None:  # e.g. where an unclosed bracket opened
            problem += f" ({context} at line {context_mark.line + 1})"
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    lines = _lines(root) if root is not None else {}
    missing: list[Path_] = []
    data = _interpolate(data, env, (), missing)
    problems = [
        f"{source}:{_line_of(lines, p[:-1])}: {_dotted(p[:-1])}: environment variable "
        f"{p[-1][2:-1]} is not set"
        for p in missing
    ]
    unset = {p[:-1] for p in missing}  # their validation errors would only be noise
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(part for part in err["loc"] if not str(part).startswith("function-"))
            if loc not in unset:
                problems.append(f"{source}:{_line_of(lines, loc)}: {_dotted(loc)}: {err['msg']}")
    problems += _connector_problems(data, lines, source, unset)
    if problems:
        raise ConfigError(problems)
    assert settings is not None
    return settings


def _connector_problems(data: dict, lines: dict, source: str, unset: set) -> list[str]:
    """Unknown connector types and bad connector options, found before start-up.

    Read from the raw data, so they are reported along with every other problem.
    """
    from bridge import registry

    problems = []
    connectors = data.get("connectors")
    for i, conn in enumerate(connectors if isinstance(connectors, list) else []):
        if not isinstance(conn, dict) or not isinstance(conn.get("type"), str):
            continue  # the Settings model reports these
        try:
            cls = registry.connector_class(conn["type"])
        except ConfigError as exc:
            problems.append(
                f"{source}:{_line_of(lines, ('connectors', i, 'type'))}: "
                f"connectors[{i}].type: {exc}"
            )
            continue
        options = conn.get("options", {})
        if not isinstance(options, dict):
            continue  # the Settings model reports it
        try:
            cls.Options.model_validate(options)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ("connectors", i, "options", *err["loc"])
                if loc in unset:
                    continue
                problems.append(f"{source}:{_line_of(lines, loc)}: {_dotted(loc)}: {err['msg']}")
    return problems


def load_settings(path: str | Path, env: dict[str, str] | None = None) -> Settings:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the config file is not UTF-8 text ({exc.reason})") from None
    return parse_settings(text, source=str(path), env=env)
