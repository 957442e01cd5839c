"""FHIR R4 connector for real EHRs (Epic, Oracle Health, athenahealth, Canvas, Medplum, ...)."""

from __future__ import annotations

from connectors.fhir_r4.config import FhirOptions
from connectors.fhir_r4.connector import FhirConnector
from connectors.fhir_r4.discovery import Capabilities

__all__ = ["Capabilities", "FhirConnector", "FhirOptions"]
