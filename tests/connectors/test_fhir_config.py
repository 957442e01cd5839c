"""Options: validated at start, each problem named by its key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.config import parse_settings
from bridge.errors import ConfigError
from connectors.fhir_r4 import FhirOptions
from tests.conftest import BASE_CONFIG


def test_defaults() -> None:
    o = FhirOptions.model_validate({"base_url": "https://ehr.example.org/fhir/"})
    assert o.base_url == "https://ehr.example.org/fhir"
    assert o.auth.type == "none"
    assert (o.page_size, o.note_content_type, o.max_retries) == (100, "text/plain", 3)
    assert o.lookback_seconds == 300 and not o.write_task_updates and not o.require_encounter


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"base_url": "ehr.example.org/fhir"}, "base_url"),
        ({"base_url": "https://x/fhir", "page_size": 0}, "page_size"),
        (
            {"base_url": "https://x/fhir", "note_content_type": "application/pdf"},
            "note_content_type",
        ),
        ({"base_url": "https://x/fhir", "auth": {"type": "basic"}}, "auth"),
        ({"base_url": "https://x/fhir", "auth": {"type": "bearer"}}, "auth.bearer.token"),
        ({"base_url": "https://x/fhir", "colour": "blue"}, "colour"),
        ({"base_url": "https://x/fhir", "task_filter": {"codes": "x"}}, "task_filter.codes"),
    ],
)
def test_bad_options_name_their_key(options, where) -> None:
    with pytest.raises(ValidationError) as info:
        FhirOptions.model_validate(options)
    locs = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
    assert any(loc.startswith(where) for loc in locs), locs


def test_task_filter_search_params() -> None:
    o = FhirOptions.model_validate(
        {"base_url": "https://x/fhir", "task_filter": {"code": "hw", "_tag": "urn:s|homework"}}
    )
    assert o.task_filter.search_params() == [("code", "hw"), ("_tag", "urn:s|homework")]
    only_system = FhirOptions.model_validate(
        {"base_url": "https://x/fhir", "task_filter": {"code_system": "urn:s"}}
    )
    assert only_system.task_filter.search_params() == [("code", "urn:s|")]


def test_the_config_file_reports_fhir_option_problems_with_their_line() -> None:
    text = BASE_CONFIG.replace(
        "connectors:\n",
        "connectors:\n"
        "  - name: epic\n"
        "    type: fhir\n"
        "    options:\n"
        "      base_url: https://fhir.example.org/api/FHIR/R4\n"
        "      page_size: 5000\n",
        1,
    )
    with pytest.raises(ConfigError) as info:
        parse_settings(text, source="c.yaml", env={})
    assert any(
        "connectors.0.options.page_size" in p or "connectors[0].options.page_size" in p
        for p in info.value.problems
    ), info.value.problems


def test_a_valid_fhir_connector_loads_from_the_config_file() -> None:
    text = BASE_CONFIG.replace(
        "connectors:\n",
        "connectors:\n"
        "  - name: medplum\n"
        "    type: fhir\n"
        "    options:\n"
        "      base_url: https://api.medplum.com/fhir/R4\n"
        "      auth: {type: bearer, token: abc}\n"
        "      write_task_updates: true\n",
        1,
    )
    settings = parse_settings(text, source="c.yaml", env={})
    assert [c.type for c in settings.connectors] == ["fhir", "sandbox"]
