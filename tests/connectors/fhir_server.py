"""The stand-in FHIR server for connector tests, wired into respx.

The server itself lives in :mod:`connectors.fhir_r4.testing` so the benchmark can use it
without pytest; this module adds what tests need around it: a respx router that refuses
any request to a host nobody mocked, key pairs, and a connector factory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bridge.clock import Clock
from bridge.domain import NoteKind, NoteWrite
from bridge.fhir import build_document_reference
from connectors.fhir_r4 import FhirConnector, FhirOptions
from connectors.fhir_r4.testing import (  # noqa: F401 - re-exported for the tests
    FakeFhirServer,
    appointment_resource,
    encounter_resource,
    iso,
    notification,
    outcome,
    patient_resource,
    practitioner_resource,
    task_resource,
)


@contextmanager
def mounted(server: FakeFhirServer) -> Iterator[respx.MockRouter]:
    """respx routes for the server's host; a request anywhere else fails the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        server.mount(router)
        yield router


def write_key(directory: Path, algorithm: str) -> tuple[Path, Any]:
    """A fresh PEM private key for the algorithm; returns (path, public key)."""
    if algorithm == "RS384":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP384R1())
    path = directory / f"{algorithm.lower()}-key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, key.public_key()


class Sleeps(list):
    """Records the back-off the connector asked for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_connector(
    server: FakeFhirServer,
    clock: Clock,
    *,
    name: str = "ehr",
    sleeps: Sleeps | None = None,
    **options: Any,
) -> FhirConnector:
    opts = FhirOptions.model_validate({"base_url": server.base, **options})
    return FhirConnector(name, opts, clock=clock, sleep=sleeps if sleeps is not None else Sleeps())


def seed_basics(server: FakeFhirServer) -> None:
    """One client and one clinician, as most tests need."""
    server.put(
        patient_resource(
            "p1", email="alex@example.org", language="es-MX", timezone="America/Denver"
        )
    )
    server.put(practitioner_resource("dr1"))


def note_write(
    value: str = "hw-t1-completion", attempt: int = 1, text: str = "Done <3 times>\n\nok"
):
    """A write-back request as the core makes it (text/plain DocumentReference included)."""
    written = datetime(2026, 3, 3, 15, tzinfo=UTC)
    doc = build_document_reference(
        identifier_system="urn:homework-bridge:note",
        identifier_value=value,
        patient_ref="Patient/p1",
        author_ref="Practitioner/dr1",
        task_ref="Task/t1",
        text=text,
        date=written,
    )
    return NoteWrite(
        identifier_system="urn:homework-bridge:note",
        identifier_value=value,
        kind=NoteKind.completion,
        assignment_external_id="t1",
        patient_external_id="p1",
        clinician_external_id="dr1",
        text=text,
        written_at=written,
        document_reference=doc.model_dump(mode="json", exclude_none=True),
        attempt=attempt,
    )
