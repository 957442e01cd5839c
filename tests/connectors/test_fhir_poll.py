"""Incremental poll against the stand-in server: pages, cursors, lookups, bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.domain import (
    AppointmentBooked,
    AssignmentCancelled,
    AssignmentUpserted,
    ClinicianData,
    PatientData,
    TaskStatus,
)
from bridge.errors import FatalError, RetriableError
from tests.connectors.fhir_server import (
    FakeFhirServer,
    Sleeps,
    appointment_resource,
    make_connector,
    mounted,
    note_write,
    patient_resource,
    practitioner_resource,
    seed_basics,
    task_resource,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "fhir" / "task-example-hl7.json"


def upserts(pages) -> list[AssignmentUpserted]:
    return [e for p in pages for e in p.events if isinstance(e, AssignmentUpserted)]


def params_of(request) -> list[tuple[str, str]]:
    return list(request.url.params.multi_items())


def task_searches(server: FakeFhirServer):
    return [r for r in server.requests if r.url.path.endswith("/Task")]


def add_tasks(server: FakeFhirServer, n: int, **kw) -> None:
    for i in range(n):
        server.put(task_resource(f"t{i}", **kw))


def test_full_poll_pages_through_next_links_with_advancing_cursors(server, clock) -> None:
    add_tasks(server, 5)
    connector = make_connector(server, clock, page_size=2)
    pages = list(connector.poll(None))

    assert len(pages) == 3  # one Page per Bundle page
    stamps = [server.read("Task", f"t{i}")["meta"]["lastUpdated"] for i in range(5)]
    assert [p.cursor for p in pages] == [stamps[1], stamps[3], stamps[4]]
    assert [e.assignment.external_id for e in upserts(pages)] == [f"t{i}" for i in range(5)]
    assert all(not p.rejections for p in pages)
    first = params_of(task_searches(server)[0])
    assert ("_sort", "_lastUpdated") in first and ("_count", "2") in first
    assert not any(k == "_lastUpdated" for k, _ in first)


def test_events_carry_the_client_and_clinician(server, clock) -> None:
    server.put(task_resource("t1"))
    [page] = list(make_connector(server, clock).poll(None))
    [event] = page.events
    assert event.assignment.external_id == "t1"
    assert event.assignment.patient_external_id == "p1"
    assert event.assignment.clinician_external_id == "dr1"
    assert event.assignment.title == "Thought record about work stress"
    assert event.assignment.type_code == "thought_record"
    assert event.assignment.due_at == datetime(2026, 3, 8, 10, tzinfo=UTC)
    assert event.assignment.repetitions == 3
    assert event.patient == PatientData(
        "p1",
        "Alex Client",
        phone="+13125550101",
        email="alex@example.org",
        language="es-MX",
        timezone="America/Denver",
    )
    assert event.clinician == ClinicianData("dr1", "Ana Reyes")


def test_incremental_poll_asks_only_for_changes_since_cursor_minus_lookback(server, clock) -> None:
    add_tasks(server, 3)
    connector = make_connector(
        server,
        clock,
        lookback_seconds=60,
        task_filter={
            "code_system": "urn:example:homework",
            "code": "thought_record",
            "_tag": "urn:t|hw",
        },
    )
    list(connector.poll(None))
    cursor = "2026-03-01T09:00:05.000Z"
    server.requests.clear()
    list(connector.poll(cursor))
    params = params_of(task_searches(server)[0])
    assert ("_lastUpdated", "gt2026-03-01T08:59:05.000Z") in params
    assert ("code", "urn:example:homework|thought_record") in params
    assert ("_tag", "urn:t|hw") in params


def test_second_poll_from_last_cursor_yields_nothing_new(server, clock) -> None:
    add_tasks(server, 4)
    connector = make_connector(server, clock, page_size=3)
    pages = list(connector.poll(None))
    server.requests.clear()

    again = list(connector.poll(pages[-1].cursor))

    assert all(not p.events for p in again)
    assert again[-1].cursor == pages[-1].cursor
    assert server.count(path="/Patient/") == 0  # unchanged Tasks are not looked into


def test_a_change_inside_the_lookback_window_is_seen(server, clock) -> None:
    add_tasks(server, 2)
    connector = make_connector(server, clock)
    cursor = list(connector.poll(None))[-1].cursor
    changed = server.read("Task", "t0")
    changed["description"] = "Breathing practice"
    # committed by the EHR with a timestamp just before our cursor (a slow transaction)
    server.put(changed, at=datetime(2026, 3, 1, 9, 0, 2, tzinfo=UTC))

    [page] = list(connector.poll(cursor))

    assert [e.assignment.title for e in upserts([page])] == ["Breathing practice"]
    assert page.cursor == cursor  # never moves backwards


def test_a_page_the_core_did_not_commit_is_read_again(server, clock) -> None:
    add_tasks(server, 4)
    connector = make_connector(server, clock, page_size=2)
    polling = connector.poll(None)
    first = next(polling)  # the core commits this page, then crashes on the next one
    second = next(polling)
    polling.close()
    assert len(upserts([second])) == 2

    again = list(connector.poll(first.cursor))

    assert [e.assignment.external_id for e in upserts(again)] == ["t2", "t3"]


def test_cancelled_and_entered_in_error_tasks_cancel(server, clock) -> None:
    server.put(task_resource("t1", status="cancelled"))
    server.put(task_resource("t2", status="entered-in-error"))
    server.put(task_resource("t3", status="draft"))
    [page] = list(make_connector(server, clock).poll(None))
    assert page.events == [
        AssignmentCancelled("t1", "cancelled in source"),
        AssignmentCancelled("t2", "entered in error in source"),
    ]
    assert not page.rejections


def test_ehr_statuses_outside_the_bridge_vocabulary_are_read_sensibly(server, clock) -> None:
    server.put(task_resource("t1", status="accepted"))
    server.put(task_resource("t2", status="on-hold"))
    [page] = list(make_connector(server, clock).poll(None))
    assert page.events[0].assignment.status == TaskStatus.requested
    assert page.events[1] == AssignmentCancelled("t2", "on hold in source")


def test_each_reference_is_read_once_per_poll_without_include(bare_server, clock) -> None:
    bare_server.put(patient_resource("p2"))
    for i, who in enumerate(["p1", "p1", "p2", "p1"]):
        bare_server.put(task_resource(f"t{i}", patient=who))
    pages = list(make_connector(bare_server, clock, page_size=2).poll(None))

    assert len(upserts(pages)) == 4
    assert bare_server.count("GET", "/Patient/p1") == 1
    assert bare_server.count("GET", "/Patient/p2") == 1
    assert bare_server.count("GET", "/Practitioner/dr1") == 1
    assert not any(k == "_include" for k, _ in params_of(task_searches(bare_server)[0]))


def test_include_saves_the_reads(server, clock) -> None:
    add_tasks(server, 3)
    pages = list(make_connector(server, clock).poll(None))
    assert len(upserts(pages)) == 3
    assert server.count("GET", "/Patient/") == 0
    assert server.count("GET", "/Practitioner/") == 0
    includes = [v for k, v in params_of(task_searches(server)[0]) if k == "_include"]
    assert includes == ["Task:patient", "Task:requester"]


def test_open_task_without_due_date_brings_the_next_session(server, clock) -> None:
    server.put(appointment_resource("a0", "p1", "2026-03-02T15:00:00Z"))  # past
    server.put(appointment_resource("a1", "p1", "2026-03-10T15:00:00Z"))
    server.put(appointment_resource("a2", "p1", "2026-03-17T15:00:00Z"))
    server.put(task_resource("t1", due=None))
    server.put(task_resource("t2", due=None))
    server.put(task_resource("t3"))
    [page] = list(make_connector(server, clock).poll(None))

    booked = [e for e in page.events if isinstance(e, AppointmentBooked)]
    assert booked == [AppointmentBooked("p1", datetime(2026, 3, 10, 15, tzinfo=UTC))] * 2
    [search] = [r for r in server.requests if r.url.path.endswith("/Appointment")]
    params = params_of(search)
    assert ("patient", "Patient/p1") in params and ("status", "booked") in params
    assert ("date", "ge2026-03-03T15:00:00.000Z") in params
    assert ("_sort", "date") in params and ("_count", "1") in params


def test_bad_entries_are_rejected_and_the_rest_of_the_page_goes_on(server, clock) -> None:
    server.put(task_resource("t1"))
    server.put(task_resource("t2", authoredOn="yesterday-ish"))  # fails validation
    server.put(task_resource("t3", patient=None))  # no patient
    server.put(task_resource("t4", patient="ghost"))  # a patient the server does not know
    server.put(patient_resource("p9", phone=None, email=None))
    server.put(task_resource("t5", patient="p9"))  # no contact: the core decides
    server.put(task_resource("t6"))
    [page] = list(make_connector(server, clock).poll(None))

    assert [e.assignment.external_id for e in upserts([page])] == ["t1", "t5", "t6"]
    reasons = {r.external_id: r.reason for r in page.rejections}
    assert set(reasons) == {"t2", "t3", "t4"}
    assert "failed validation at authoredOn" in reasons["t2"]
    assert "no 'for'" in reasons["t3"]
    assert "Patient/ghost" in reasons["t4"] and "404" in reasons["t4"]
    assert upserts([page])[1].patient == PatientData("p9", "Alex Client")
    assert page.cursor == server.read("Task", "t6")["meta"]["lastUpdated"]


def test_requester_that_is_not_a_practitioner_is_dropped(server, clock) -> None:
    task = task_resource("t1")
    task["requester"] = {"reference": "PractitionerRole/r1"}
    server.put(task)
    [page] = list(make_connector(server, clock).poll(None))
    [event] = page.events
    assert event.clinician is None and event.assignment.clinician_external_id is None


def test_owner_type_filter_skips_tasks_for_someone_else(server, clock) -> None:
    server.put(task_resource("t1"))
    server.put(task_resource("t2", owner="Practitioner/dr1"))
    pages = list(make_connector(server, clock, task_filter={"owner_type": "Patient"}).poll(None))
    assert [e.assignment.external_id for e in upserts(pages)] == ["t1"]
    assert not pages[0].rejections


def test_repeated_next_link_is_refused(server, clock) -> None:
    add_tasks(server, 6)
    server.next_link_mode = "loop"
    pages = list(make_connector(server, clock, page_size=2).poll(None))

    assert len(pages) == 2
    assert "Loop detected in pagination" in pages[-1].rejections[0].reason
    assert len(upserts(pages)) == 4
    assert pages[-1].cursor == server.read("Task", "t3")["meta"]["lastUpdated"]


def test_next_link_to_another_host_is_refused(server, clock) -> None:
    add_tasks(server, 3)
    server.next_link_mode = "foreign"
    pages = list(make_connector(server, clock, page_size=2).poll(None))
    assert len(pages) == 1
    assert "another host (elsewhere.example.net)" in pages[0].rejections[0].reason
    assert len(upserts(pages)) == 2  # and respx (assert_all_mocked) saw no foreign request


def test_html_instead_of_a_bundle_stops_the_poll_with_a_clear_reason(server, clock) -> None:
    add_tasks(server, 4)
    server.fault("html", path="_getpages")
    pages = list(make_connector(server, clock, page_size=2).poll(None))

    assert len(pages) == 2
    assert len(upserts(pages)) == 2
    [rejection] = pages[1].rejections
    assert "answered HTML" in rejection.reason
    assert pages[1].cursor == pages[0].cursor


def test_html_on_the_first_page_keeps_the_cursor(server, clock) -> None:
    server.put(task_resource("t1"))
    server.fault("html", path="/Task")
    cursor = "2026-03-01T09:00:00.000Z"
    [page] = list(make_connector(server, clock).poll(cursor))
    assert page.cursor == cursor and not page.events
    assert "HTML" in page.rejections[0].reason


def test_a_search_the_server_refuses_is_a_rejection_with_its_outcome(server, clock) -> None:
    server.fault("bad-request", path="/Task")
    [page] = list(make_connector(server, clock).poll(None))
    assert page.rejections[0].reason == (
        "Task search stopped: GET https://ehr.example.org/fhir/Task: 400 error/invalid: "
        "Unknown search parameter"
    )


def test_throttling_is_retried_after_the_servers_delay(server, clock) -> None:
    server.put(task_resource("t1"))
    server.fault("throttle", times=2, path="/Task", retry_after="7")
    sleeps = Sleeps()
    [page] = list(make_connector(server, clock, sleeps=sleeps).poll(None))
    assert len(page.events) == 1
    assert sleeps == [7.0, 7.0]


def test_timeouts_and_5xx_are_retried_then_reported_as_retriable(server, clock) -> None:
    server.put(task_resource("t1"))
    server.fault("timeout", path="/Task")
    server.fault("fail", path="/Task", status=502)
    [page] = list(make_connector(server, clock, max_retries=2).poll(None))
    assert len(page.events) == 1

    server.fault("fail", times=3, path="/Task")
    with pytest.raises(RetriableError, match="503"):
        list(make_connector(server, clock, max_retries=2).poll(None))


def test_server_without_last_updated_search_is_filtered_here(clock) -> None:
    fake = FakeFhirServer(last_updated=False)
    seed_basics(fake)
    with mounted(fake):
        for i in range(3):
            fake.put(task_resource(f"t{i}"))
        connector = make_connector(fake, clock, lookback_seconds=0)
        cursor = list(connector.poll(None))[-1].cursor
        fake.put(task_resource("t9"))
        other = make_connector(fake, clock, lookback_seconds=0)  # a restart: no memory
        pages = list(other.poll(cursor))
    assert [e.assignment.external_id for e in upserts(pages)] == ["t9"]


def test_a_cursor_that_is_not_an_instant_is_fatal(server, clock) -> None:
    with pytest.raises(FatalError, match="not a FHIR instant"):
        list(make_connector(server, clock).poll("page-7"))


def test_hl7_task_example_maps_to_an_assignment(server, clock) -> None:
    example = json.loads(FIXTURE.read_text())
    server.put(patient_resource("example", name=("Peter", "Chalmers")))
    server.put(practitioner_resource("example", name=("Adam", "Careful")))
    server.put(example)
    [page] = list(make_connector(server, clock).poll(None))

    [event] = page.events
    a = event.assignment
    assert a.external_id == "example1"
    assert a.patient_external_id == "example"
    assert a.clinician_external_id == "example"
    assert a.type_code == "Lipid Panel"
    assert a.title.startswith("Create order for getting specimen")
    assert a.status == TaskStatus.in_progress
    assert a.assigned_at == datetime(2016, 10, 30, 22, 25, 5, tzinfo=UTC)
    assert a.due_at == datetime(2016, 11, 1, 23, 45, 5, tzinfo=UTC)
    assert a.repetitions == 1
    assert event.patient.name == "Peter Chalmers"
    assert event.clinician == ClinicianData("example", "Adam Careful")


def test_lookback_memory_is_bounded_by_the_window(server, clock) -> None:
    add_tasks(server, 3)
    connector = make_connector(server, clock, lookback_seconds=1)
    list(connector.poll(None))
    later = (datetime(2026, 3, 1, 9, tzinfo=UTC) + timedelta(hours=1)).isoformat()
    list(connector.poll(later))
    assert connector._committed == {}


def appointment_searches(server: FakeFhirServer) -> int:
    return sum(r.url.path.endswith("/Appointment") for r in server.requests)


def test_next_session_is_remembered_for_a_while(server, clock) -> None:
    server.put(appointment_resource("a1", "p1", "2026-03-10T15:00:00Z"))
    server.put(task_resource("t1", due=None))
    connector = make_connector(server, clock, appointment_cache_seconds=600)
    cursor = list(connector.poll(None))[-1].cursor
    assert appointment_searches(server) == 1

    def touch() -> list:
        task = server.read("Task", "t1")
        task["description"] += "!"
        server.put(task)
        return list(connector.poll(cursor))

    clock.advance(timedelta(minutes=5))
    pages = touch()
    assert appointment_searches(server) == 1  # remembered
    booked = [e for p in pages for e in p.events if isinstance(e, AppointmentBooked)]
    assert booked == [AppointmentBooked("p1", datetime(2026, 3, 10, 15, tzinfo=UTC))]

    clock.advance(timedelta(minutes=6))
    touch()
    assert appointment_searches(server) == 2  # stale: asked again


def test_next_session_cache_can_be_off(server, clock) -> None:
    server.put(task_resource("t1", due=None))
    connector = make_connector(server, clock, appointment_cache_seconds=0)
    list(connector.poll(None))
    list(make_connector(server, clock).poll(None))  # another instance: its own memory
    task = server.read("Task", "t1")
    task["description"] += "!"
    server.put(task)
    list(connector.poll(None))
    assert appointment_searches(server) == 3


def test_search_params_go_on_every_search(server, clock) -> None:
    server.put(task_resource("t1", due=None))
    connector = make_connector(server, clock, search_params={"ah-practice": "Organization/a-1"})
    list(connector.poll(None))
    connector.write_note(note_write(attempt=2))
    searches = [r for r in server.requests if r.method == "GET" and "?" in str(r.url)]
    searches = [r for r in searches if "_getpages" not in str(r.url)]
    assert {r.url.path.rsplit("/", 1)[1] for r in searches} >= {"Task", "Appointment"}
    assert all(r.url.params.get("ah-practice") == "Organization/a-1" for r in searches)
