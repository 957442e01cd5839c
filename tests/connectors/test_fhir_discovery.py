"""What the server can do, read from /metadata and the SMART configuration."""

from __future__ import annotations

from connectors.fhir_r4.discovery import Capabilities, describe, read_capabilities
from tests.connectors.fhir_server import FakeFhirServer, make_connector


def test_discover_reports_a_capable_server(server, clock) -> None:
    caps = make_connector(server, clock).discover()
    assert caps.reachable and caps.fhir_version == "4.0.1"
    assert caps.software == "FakeFhirServer 1.0"
    assert caps.task_last_updated
    assert caps.doc_conditional_create
    assert caps.subscription
    assert caps.task_versioned_update
    assert caps.task_includes == {"Task:patient", "Task:requester"}
    assert caps.token_endpoint == server.token_url


def test_discover_reports_what_a_plain_server_lacks(bare_server, clock) -> None:
    caps = make_connector(bare_server, clock).discover()
    assert not caps.doc_conditional_create
    assert not caps.subscription
    assert not caps.task_versioned_update
    assert caps.task_includes == frozenset()


def test_describe_prints_consequences_for_bridge_check(bare_server, clock) -> None:
    lines = make_connector(bare_server, clock, write_task_updates=True).describe()
    assert lines[0].startswith("FHIR R4 at https://ehr.example.org/fhir, auth none")
    assert (
        "server lacks conditional create on DocumentReference: notes are checked by identifier "
        "search before each retry" in lines
    )
    assert any(line.startswith("server lacks versioned Task update") for line in lines)
    assert any("one read per distinct client" in line for line in lines)


def test_describe_survives_an_unreachable_server(clock) -> None:
    fake = FakeFhirServer()
    from tests.connectors.fhir_server import mounted

    with mounted(fake):
        fake.fault("fail", times=10, path="/metadata")
        lines = make_connector(fake, clock, max_retries=0).describe()
    assert lines[-1].startswith("server not reachable: GET https://ehr.example.org/fhir/metadata")


def test_html_metadata_means_the_cautious_defaults(server, clock) -> None:
    server.fault("html", path="/metadata")
    caps = make_connector(server, clock).discover()
    assert not caps.reachable and not caps.doc_conditional_create
    assert "answered HTML" in caps.problems[0]


def test_read_capabilities_is_pure_and_cautious() -> None:
    assert read_capabilities(None) == Capabilities(
        problems=("no CapabilityStatement at /metadata: assuming the least",)
    )
    statement = {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Task",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [{"name": "patient", "type": "reference"}],
                    },
                    {"type": "DocumentReference", "interaction": [{"code": "create"}]},
                ],
            }
        ],
    }
    caps = read_capabilities(statement, {"token_endpoint": "https://auth.example/token"})
    assert caps.task_search and not caps.task_last_updated  # listed params, _lastUpdated absent
    assert caps.doc_create and not caps.doc_conditional_create
    assert caps.token_endpoint == "https://auth.example/token"
    lines = describe(caps, write_task_updates=False, require_encounter=True)
    assert (
        "server lacks _lastUpdated on Task search: every poll re-reads all homework Tasks" in lines
    )
    assert "require_encounter is on but the server lacks Encounter search" in lines
