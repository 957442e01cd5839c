"""Conversions between stored rows and domain data, and the Task JSON kept on each row."""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import Session, select

from bridge.domain import (
    AssignmentData,
    Barrier,
    BusinessStatus,
    CompletionData,
    CompletionStatus,
    TaskStatus,
)
from bridge.fhir import assignment_to_task, task_from_json, task_to_assignment, task_to_json
from bridge.store.models import Assignment, Completion


def completion_data(row: Completion | None) -> CompletionData | None:
    if row is None:
        return None
    return CompletionData(
        status=CompletionStatus(row.status),
        source=row.source,
        reported_at=row.reported_at,
        quantity=row.quantity,
        quality=row.quality,
        barriers=tuple(Barrier(b) for b in row.barriers.split(",") if b),
        reflection=row.reflection,
    )


def assignment_data(row: Assignment) -> AssignmentData:
    """The assignment as last seen in its source, read back from the stored Task."""
    _connector, data, _completion, _business = task_to_assignment(task_from_json(row.task_json))
    return data


def task_json(
    connector: str,
    data: AssignmentData,
    completion: Completion | None,
    business_status: str | None,
) -> str:
    task = assignment_to_task(
        connector,
        data,
        completion=completion_data(completion),
        business_status=BusinessStatus(business_status) if business_status else None,
    )
    return task_to_json(task)


def refresh_task(session: Session, row: Assignment, data: AssignmentData | None = None) -> None:
    """Rebuild the row's Task from its source data plus what the bridge has learnt."""
    data = replace(data or assignment_data(row), status=TaskStatus(row.status))
    completion = session.exec(select(Completion).where(Completion.assignment_id == row.id)).first()
    row.task_json = task_json(row.connector, data, completion, row.business_status)
