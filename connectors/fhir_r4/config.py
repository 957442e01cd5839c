"""Options for the ``fhir`` connector, validated when the configuration is loaded.

Every mistake an IT person can make here (a key file that is not a key, a key of the
wrong kind for the chosen algorithm, a base URL without a scheme) is reported at start-up
with the key that holds it, not on the first poll at 3 a.m.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DEFAULT_SCOPE = (
    "system/Task.read system/Patient.read system/Practitioner.read system/Appointment.read "
    "system/Encounter.read system/DocumentReference.read system/DocumentReference.write"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str, what: str) -> str:
    url = httpx.URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{what} must be an absolute http(s) URL, got {value!r}")
    return value.rstrip("/")


class SmartBackendAuth(_Strict):
    """SMART Backend Services: a signed JWT assertion buys a short-lived access token."""

    type: Literal["smart_backend"]
    client_id: str = Field(min_length=1)
    private_key_path: Path
    algorithm: Literal["RS384", "ES384"] = "RS384"
    kid: str = Field(min_length=1)
    token_url: str | None = None  # else read from {base_url}/.well-known/smart-configuration
    scope: str = DEFAULT_SCOPE

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "token_url")

    @model_validator(mode="after")
    def _key_matches_algorithm(self) -> SmartBackendAuth:
        from connectors.fhir_r4.auth import load_private_key

        load_private_key(self.private_key_path, self.algorithm)  # raises ValueError, named
        return self


class BearerAuth(_Strict):
    """A static token (sandboxes, Medplum client credentials minted elsewhere)."""

    type: Literal["bearer"]
    token: SecretStr


class NoAuth(_Strict):
    """Open servers: public test endpoints, a FHIR server on the practice's own network."""

    type: Literal["none"] = "none"


AuthOptions = Annotated[SmartBackendAuth | BearerAuth | NoAuth, Field(discriminator="type")]


class TaskFilter(_Strict):
    """Which Tasks are homework. All but ``owner_type`` become Task search parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    code_system: str | None = None
    code: str | None = None
    tag: str | None = Field(None, alias="_tag")  # token "system|code"
    owner_type: str | None = None  # e.g. Patient; checked on each Task (no portable search)

    def search_params(self) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = []
        if self.code_system or self.code:
            system = f"{self.code_system}|" if self.code_system else ""
            params.append(("code", f"{system}{self.code or ''}"))
        if self.tag:
            params.append(("_tag", self.tag))
        return params


class FhirOptions(_Strict):
    base_url: str
    auth: AuthOptions = NoAuth()
    task_filter: TaskFilter = TaskFilter()
    page_size: int = Field(100, ge=1, le=1000)
    note_content_type: Literal["text/plain", "text/markdown", "text/html"] = "text/plain"
    require_encounter: bool = False
    write_task_updates: bool = False
    notification_secret: SecretStr | None = None
    timeout_seconds: float = Field(30.0, gt=0, le=300)
    max_retries: int = Field(3, ge=0, le=10)
    lookback_seconds: float = Field(300.0, ge=0, le=86_400)
    # Added to every search (Task, Appointment, Encounter, DocumentReference): some servers
    # need a tenant or practice parameter on each (athenahealth: ah-practice).
    search_params: dict[str, str] = Field(default_factory=dict)
    # How long a client's next booked session, once looked up, is trusted (0: every poll).
    appointment_cache_seconds: float = Field(3600.0, ge=0, le=86_400)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _http_url(value, "base_url")
