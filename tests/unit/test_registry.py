"""Connector plugins: found by entry point; one that cannot load stops start-up."""

from __future__ import annotations

import importlib.metadata
from importlib.metadata import EntryPoint

import pytest
from pydantic import SecretStr

from bridge import registry
from bridge.config import Settings, parse_settings
from bridge.errors import ConfigError
from bridge.service import Bridge, build_connectors
from connectors.sandbox import SandboxConnector

REAL_ENTRY_POINTS = importlib.metadata.entry_points


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=registry.GROUP)


@pytest.fixture
def extra_plugins(monkeypatch):
    """Install fake entry points next to the real ones."""

    def install(*extra: EntryPoint) -> None:
        def entry_points(**kwargs):
            return [*extra, *REAL_ENTRY_POINTS(**kwargs)]

        monkeypatch.setattr(registry, "entry_points", entry_points)

    return install


def settings_with(connector_type: str, enabled: bool = True) -> Settings:
    """Settings built past the config loader's own connector checks."""
    return Settings.model_validate(
        {
            "practice": {"name": "Riverside", "contact": "desk@example.org"},
            "database": {"url": "sqlite://"},
            "connectors": [
                {"name": "ehr", "type": "sandbox", "options": {"page_size": 3}},
                {"name": "other", "type": connector_type, "enabled": enabled},
            ],
        }
    )


def test_entry_points_expose_the_sandbox() -> None:
    found = registry.available()
    assert "sandbox" in found
    assert found["sandbox"].value == "connectors.sandbox:SandboxConnector"
    assert found["sandbox"].group == "bridge.connectors"
    assert registry.connector_class("sandbox") is SandboxConnector


def test_unknown_connector_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError) as info:
        registry.connector_class("nope")
    assert str(info.value) == "unknown connector 'nope'; available: fhir, sandbox"


def test_plugin_whose_module_is_missing(extra_plugins) -> None:
    extra_plugins(ep("broken", "no_such_module_xyz:Thing"))
    assert set(registry.available()) == {"broken", "fhir", "sandbox"}
    with pytest.raises(ConfigError) as info:
        registry.connector_class("broken")
    assert str(info.value) == (
        "connector 'broken' failed to load "
        "(ModuleNotFoundError: No module named 'no_such_module_xyz'); "
        "available: broken, fhir, sandbox"
    )
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    # the others still load
    assert registry.connector_class("sandbox") is SandboxConnector


def test_plugin_that_raises_on_import(extra_plugins, tmp_path, monkeypatch) -> None:
    (tmp_path / "exploding_plugin_xyz.py").write_text("raise RuntimeError('no licence key')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    extra_plugins(ep("exploding", "exploding_plugin_xyz:Connector"))
    with pytest.raises(ConfigError) as info:
        registry.connector_class("exploding")
    assert str(info.value) == (
        "connector 'exploding' failed to load (RuntimeError: no licence key); "
        "available: exploding, fhir, sandbox"
    )


def test_plugin_whose_attribute_is_missing(extra_plugins) -> None:
    extra_plugins(ep("typo", "connectors.sandbox:SandboxConector"))
    with pytest.raises(ConfigError) as info:
        registry.connector_class("typo")
    message = str(info.value)
    assert message.startswith("connector 'typo' failed to load (AttributeError: ")
    assert "SandboxConector" in message
    assert message.endswith("; available: fhir, sandbox, typo")


@pytest.mark.parametrize(
    "value",
    [
        "bridge.errors:ConfigError",  # a class, but not a Connector
        "bridge.registry:available",  # not a class at all
        "connectors.sandbox:SandboxOptions",  # the plugin's options, not the plugin
        "bridge.connector:Connector.describe",  # a method
    ],
)
def test_plugin_that_is_not_a_connector_is_refused(extra_plugins, value) -> None:
    extra_plugins(ep("impostor", value))
    with pytest.raises(ConfigError) as info:
        registry.connector_class("impostor")
    assert str(info.value) == "connector 'impostor' does not implement bridge.connector.Connector"


def test_config_loading_reports_a_broken_plugin_at_its_type_line(extra_plugins) -> None:
    extra_plugins(ep("broken", "no_such_module_xyz:Thing"))
    text = """\
practice:
  name: Riverside
  contact: desk@example.org
connectors:
  - name: ehr
    type: broken
"""
    with pytest.raises(ConfigError) as info:
        parse_settings(text, source="c.yaml", env={})
    assert info.value.problems == [
        "c.yaml:6: connectors[0].type: connector 'broken' failed to load "
        "(ModuleNotFoundError: No module named 'no_such_module_xyz'); "
        "available: broken, fhir, sandbox"
    ]


def test_build_connectors_builds_each_enabled_one(clock) -> None:
    settings = Settings.model_validate(
        {
            "practice": {"name": "Riverside", "contact": "desk@example.org"},
            "connectors": [
                {"name": "ehr", "type": "sandbox", "options": {"webhook_secret": "s3"}},
                {"name": "off", "type": "sandbox", "enabled": False},
            ],
        }
    )
    built = build_connectors(settings, clock)
    assert list(built) == ["ehr"]
    ehr = built["ehr"]
    assert isinstance(ehr, SandboxConnector)
    assert ehr.name == "ehr"
    assert ehr.clock is clock
    assert ehr.options.page_size == 50
    assert ehr.options.webhook_secret == SecretStr("s3")


def test_build_connectors_stops_on_a_broken_plugin(extra_plugins, clock) -> None:
    extra_plugins(ep("broken", "no_such_module_xyz:Thing"))
    with pytest.raises(ConfigError) as info:
        build_connectors(settings_with("broken"), clock)
    assert str(info.value) == (
        "connector 'broken' failed to load "
        "(ModuleNotFoundError: No module named 'no_such_module_xyz'); "
        "available: broken, fhir, sandbox"
    )


def test_build_connectors_stops_on_an_unknown_type(clock) -> None:
    with pytest.raises(ConfigError) as info:
        build_connectors(settings_with("epic"), clock)
    assert str(info.value) == "unknown connector 'epic'; available: fhir, sandbox"


def test_bridge_does_not_start_with_a_broken_plugin(extra_plugins, clock) -> None:
    extra_plugins(ep("broken", "no_such_module_xyz:Thing"))
    with pytest.raises(ConfigError, match="^connector 'broken' failed to load"):
        Bridge(settings_with("broken"), clock=clock)
