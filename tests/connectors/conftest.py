"""Fixtures for connector tests: the stand-in FHIR server, mounted in respx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors.fhir_server import FakeFhirServer, mounted, seed_basics


@pytest.fixture
def server() -> Iterator[FakeFhirServer]:
    fake = FakeFhirServer()
    seed_basics(fake)
    with mounted(fake):
        yield fake


@pytest.fixture
def bare_server() -> Iterator[FakeFhirServer]:
    """A server with nothing but conditional-create-less, include-less basics."""
    fake = FakeFhirServer(
        conditional_create=False, includes=False, versioned_update=False, subscription=False
    )
    seed_basics(fake)
    with mounted(fake):
        yield fake
