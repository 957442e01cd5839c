"""The package's public surface stays small and deliberate."""

from __future__ import annotations

import connectors.fhir_r4 as fhir_r4
from bridge.connector import Connector


def test_public_names() -> None:
    assert sorted(fhir_r4.__all__) == ["Capabilities", "FhirConnector", "FhirOptions"]
    assert issubclass(fhir_r4.FhirConnector, Connector)
    assert fhir_r4.FhirConnector.Options is fhir_r4.FhirOptions
