"""One contract, every connector: the same checks on ``sandbox`` and on ``fhir``.

Each connector comes with a small "world" that knows how to put homework into its source
and count the notes that landed there; the checks themselves know nothing connector-specific.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge import domain
from bridge.connector import Connector, WebhookRejected
from bridge.domain import AssignmentUpserted, NoteKind, NoteWrite, Page
from bridge.fhir import build_document_reference
from bridge.registry import connector_class
from connectors.fhir_r4.mapping import parse_instant
from tests import factories
from tests.connectors.fhir_server import (
    FakeFhirServer,
    make_connector,
    mounted,
    seed_basics,
    task_resource,
)

EVENT_TYPES = typing.get_args(domain.Event)
HOMEWORK = 5


@dataclass
class World:
    connector: Connector
    notes: Any  # () -> int: notes stored in the source
    order: Any  # cursor -> sortable key


def sandbox_world(clock) -> Iterator[World]:
    cls = connector_class("sandbox")
    ehr = cls("ehr", cls.Options(page_size=2, webhook_secret="s"), clock=clock)
    factories.seed(ehr, factories.patient("p1"))
    start = clock.now() - timedelta(days=1)
    for i in range(HOMEWORK):
        ehr.assign(factories.assignment(f"t{i}", start + timedelta(minutes=i)))
    yield World(ehr, lambda: len(ehr.notes), int)


def fhir_world(clock) -> Iterator[World]:
    assert connector_class("fhir").__name__ == "FhirConnector"
    server = FakeFhirServer()
    seed_basics(server)
    with mounted(server):
        for i in range(HOMEWORK):
            server.put(task_resource(f"t{i}"))
        connector = make_connector(server, clock, page_size=2, notification_secret="s")
        yield World(connector, lambda: len(server.all("DocumentReference")), parse_instant)


@pytest.fixture(params=["sandbox", "fhir"])
def world(request, clock) -> Iterator[World]:
    make = {"sandbox": sandbox_world, "fhir": fhir_world}[request.param]
    yield from make(clock)


def note_for(value: str, attempt: int = 1) -> NoteWrite:
    written = datetime(2026, 3, 3, 15, tzinfo=UTC)
    doc = build_document_reference(
        identifier_system="urn:homework-bridge:note",
        identifier_value=value,
        patient_ref="Patient/p1",
        author_ref=None,
        task_ref="Task/t0",
        text="Client reported: done.",
        date=written,
    )
    return NoteWrite(
        identifier_system="urn:homework-bridge:note",
        identifier_value=value,
        kind=NoteKind.completion,
        assignment_external_id="t0",
        patient_external_id="p1",
        clinician_external_id=None,
        text="Client reported: done.",
        written_at=written,
        document_reference=doc.model_dump(mode="json", exclude_none=True),
        attempt=attempt,
    )


def assignments(pages: list[Page]) -> set[str]:
    return {
        e.assignment.external_id
        for p in pages
        for e in p.events
        if isinstance(e, AssignmentUpserted)
    }


def test_poll_from_none_yields_pages_whose_cursors_advance(world) -> None:
    pages = list(world.connector.poll(None))
    assert len(pages) >= 2
    cursors = [p.cursor for p in pages]
    assert all(isinstance(c, str) for c in cursors)
    keys = [world.order(c) for c in cursors]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert assignments(pages) == {f"t{i}" for i in range(HOMEWORK)}


def test_a_second_poll_from_the_last_cursor_yields_no_new_assignments(world) -> None:
    pages = list(world.connector.poll(None))
    again = list(world.connector.poll(pages[-1].cursor))
    assert assignments(again) == set()
    if again:
        assert world.order(again[-1].cursor) >= world.order(pages[-1].cursor)


def test_writing_the_same_note_twice_keeps_one(world) -> None:
    first = world.connector.write_note(note_for("hw-t0-completion"))
    second = world.connector.write_note(note_for("hw-t0-completion", attempt=2))
    assert first == second
    assert world.notes() == 1
    world.connector.write_note(note_for("hw-t0-missed"))
    assert world.notes() == 2


def test_events_are_domain_events(world) -> None:
    for page in world.connector.poll(None):
        assert isinstance(page, Page)
        assert all(isinstance(e, EVENT_TYPES) for e in page.events)
        assert all(isinstance(r, domain.Rejection) for r in page.rejections)


def test_an_unsigned_webhook_is_rejected(world) -> None:
    assert world.connector.accepts_webhooks
    with pytest.raises(WebhookRejected):
        world.connector.handle_webhook({}, b"{}")


def test_describe_gives_lines(world) -> None:
    lines = world.connector.describe()
    assert lines and all(isinstance(line, str) and "\n" not in line for line in lines)
