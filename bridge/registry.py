"""Connector plugins, found through the ``bridge.connectors`` entry-point group.

A configured connector that is unknown or fails to import stops start-up, with the
names that are available: a practice must never run half its integrations silently.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from bridge.errors import ConfigError

GROUP = "bridge.connectors"


def available() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def connector_class(type_name: str) -> type:
    from bridge.connector import Connector

    found = available()
    names = ", ".join(sorted(found)) or "(none installed)"
    if type_name not in found:
        raise ConfigError(f"unknown connector {type_name!r}; available: {names}")
    try:
        cls = found[type_name].load()
    except Exception as exc:  # an import error in a plugin must stop start-up, clearly
        raise ConfigError(
            f"connector {type_name!r} failed to load ({type(exc).__name__}: {exc}); "
            f"available: {names}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"connector {type_name!r} does not implement bridge.connector.Connector")
    return cls
