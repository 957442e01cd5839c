"""Assignments as FHIR R4 ``Task`` resources, and back.

The Task is the bridge's public face: EHRs and auditors read it, so the mapping follows
DESIGN.md ("FHIR mapping") and must round-trip every field of :class:`AssignmentData` and
:class:`CompletionData` without loss. Everything here is pure: no I/O, no clock.

Datetimes are emitted in UTC (FHIR needs an offset; UTC keeps comparisons trivial) and come
back as aware UTC datetimes. Naive datetimes are refused rather than guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.task import Task

from bridge.domain import (
    AssignmentData,
    Barrier,
    BusinessStatus,
    CompletionData,
    CompletionStatus,
    TaskStatus,
)

TASK_IDENTIFIER_PREFIX = "urn:homework-bridge:connector:"
ASSIGNMENT_TYPE_SYSTEM = "urn:homework-bridge:assignment-type"
LIBRARY_SYSTEM = "urn:homework-bridge:library"
INPUT_SYSTEM = "urn:homework-bridge:task-input"
OUTPUT_SYSTEM = "urn:homework-bridge:task-output"
BUSINESS_STATUS_SYSTEM = "urn:homework-bridge:business-status"

# Task.input codes -> AssignmentData attribute (all carried as valueString).
INPUT_FIELDS: dict[str, str] = {
    "instructions": "instructions",
    "frequency": "frequency",
    "duration": "duration",
    "success-criteria": "success_criteria",
}

OUT_STATUS = "completion-status"  # valueCode (CompletionStatus)
OUT_QUANTITY = "quantity"  # valueInteger
OUT_QUALITY = "quality"  # valueInteger
OUT_BARRIER = "barrier"  # valueCode (Barrier), one output per barrier, order kept
OUT_REFLECTION = "reflection"  # valueString
OUT_SOURCE = "source"  # valueString
OUT_REPORTED_AT = "reported-at"  # valueDateTime
OUTPUT_CODES = frozenset(
    {OUT_STATUS, OUT_QUANTITY, OUT_QUALITY, OUT_BARRIER, OUT_REFLECTION, OUT_SOURCE}
    | {OUT_REPORTED_AT}
)

_REF_FORBIDDEN = frozenset("/?#")


# -- helpers shared with note.py -----------------------------------------------------


def as_utc(value: datetime, what: str) -> datetime:
    """UTC copy of an aware datetime; naive ones are a bug upstream, so refuse them."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)


def from_fhir_datetime(value: Any, what: str) -> datetime:
    """Aware UTC datetime from a parsed FHIR dateTime.

    A date-only value (legal FHIR, seen in foreign Tasks) means midnight UTC; coarser
    partial dates ("2016-10") cannot be placed in time and are refused.
    """
    if isinstance(value, datetime):
        return as_utc(value, what)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise ValueError(f"{what} is not a full date or dateTime: {value!r}")


def external_id_from_reference(ref: str, *, expected_type: str | None = None) -> str:
    """The id part of a literal FHIR reference.

    Accepts relative ("Patient/123"), absolute ("https://x/fhir/Patient/123") and versioned
    ("Patient/123/_history/2") forms. Contained ("#x"), conditional ("Patient?...") and bare
    ids are refused: they do not name a server resource. ``expected_type`` guards against,
    e.g., a Task whose ``for`` is a Group.
    """
    if not ref or ref.startswith("#") or "?" in ref:
        raise ValueError(f"not a literal resource reference: {ref!r}")
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not parts[-2] or not parts[-1]:
        raise ValueError(f"not a literal resource reference: {ref!r}")
    if expected_type is not None and parts[-2] != expected_type:
        raise ValueError(f"expected a {expected_type} reference, got {ref!r}")
    return parts[-1]


def task_identifier_system(connector: str) -> str:
    """The Task.identifier system naming a connector (also usable in identifier searches)."""
    if not connector or any(c.isspace() for c in connector):
        raise ValueError(f"connector name must be non-empty without whitespace: {connector!r}")
    return TASK_IDENTIFIER_PREFIX + connector


def _require(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} is required and cannot be empty")
    return value


def _ref_id(value: str, what: str) -> str:
    """An id that survives being put in "Type/<id>" and read back."""
    if not value or any(c in _REF_FORBIDDEN or c.isspace() for c in value):
        raise ValueError(f"{what} cannot be used in a FHIR reference: {value!r}")
    return value


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _typed(system: str, code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [_coding(system, code)]}, **value}


# -- assignment -> Task --------------------------------------------------------------


def assignment_to_task(
    connector: str,
    a: AssignmentData,
    *,
    completion: CompletionData | None = None,
    business_status: BusinessStatus | None = None,
    type_display: str | None = None,
    executed: tuple[datetime, datetime | None] | None = None,
) -> Task:
    """Build the Task for one assignment; absent values are omitted, never emitted empty.

    Raises ``ValueError`` for data FHIR cannot carry losslessly (naive datetimes, empty
    required strings, ids with "/", repetitions < 1, an execution end before its start).
    """
    patient_ref = f"Patient/{_ref_id(a.patient_external_id, 'patient_external_id')}"
    type_code = _require(a.type_code, "type_code")
    title = _require(a.title, "title")
    body: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [
            {
                "system": task_identifier_system(connector),
                "value": _require(a.external_id, "external_id"),
            }
        ],
        "status": TaskStatus(a.status).value,
        "intent": "order",
        "code": {"coding": [_coding(ASSIGNMENT_TYPE_SYSTEM, type_code, type_display)]},
        "description": title,
        "focus": {
            "identifier": {"system": LIBRARY_SYSTEM, "value": type_code},
            "display": type_display or title,
        },
        "for": {"reference": patient_ref},
        "owner": {"reference": patient_ref},
        "authoredOn": as_utc(a.assigned_at, "assigned_at"),
    }
    if a.clinician_external_id:
        clinician = _ref_id(a.clinician_external_id, "clinician_external_id")
        body["requester"] = {"reference": f"Practitioner/{clinician}"}
    restriction: dict[str, Any] = {}
    if a.repetitions is not None:
        if a.repetitions < 1:
            raise ValueError(f"repetitions must be >= 1, got {a.repetitions}")
        restriction["repetitions"] = a.repetitions
    if a.due_at is not None:
        restriction["period"] = {"end": as_utc(a.due_at, "due_at")}
    if restriction:
        body["restriction"] = restriction
    if executed is not None:
        body["executionPeriod"] = _period(*executed)
    inputs = [
        _typed(INPUT_SYSTEM, code, valueString=getattr(a, attr))
        for code, attr in INPUT_FIELDS.items()
        if getattr(a, attr)
    ]
    if inputs:
        body["input"] = inputs
    if completion is not None:
        body["output"] = _completion_outputs(completion)
    if business_status is not None:
        code = BusinessStatus(business_status).value
        body["businessStatus"] = {"coding": [_coding(BUSINESS_STATUS_SYSTEM, code)]}
    return Task.model_validate(body)


def _period(start: datetime, end: datetime | None) -> dict[str, datetime]:
    out = {"start": as_utc(start, "executed start")}
    if end is not None:
        out["end"] = as_utc(end, "executed end")
        if out["end"] < out["start"]:
            raise ValueError("executed end is before its start")
    return out


def _completion_outputs(c: CompletionData) -> list[dict[str, Any]]:
    out = [
        _typed(OUTPUT_SYSTEM, OUT_STATUS, valueCode=CompletionStatus(c.status).value),
        _typed(OUTPUT_SYSTEM, OUT_SOURCE, valueString=_require(c.source, "completion source")),
        _typed(
            OUTPUT_SYSTEM,
            OUT_REPORTED_AT,
            valueDateTime=as_utc(c.reported_at, "reported_at"),
        ),
    ]
    if c.quantity is not None:
        out.append(_typed(OUTPUT_SYSTEM, OUT_QUANTITY, valueInteger=c.quantity))
    if c.quality is not None:
        out.append(_typed(OUTPUT_SYSTEM, OUT_QUALITY, valueInteger=c.quality))
    out.extend(_typed(OUTPUT_SYSTEM, OUT_BARRIER, valueCode=Barrier(b).value) for b in c.barriers)
    if c.reflection:
        out.append(_typed(OUTPUT_SYSTEM, OUT_REFLECTION, valueString=c.reflection))
    return out


# -- Task -> assignment --------------------------------------------------------------


def task_to_assignment(
    task: Task, *, connector: str | None = None
) -> tuple[str, AssignmentData, CompletionData | None, BusinessStatus | None]:
    """Read a Task back into domain data: ``(connector, assignment, completion, status)``.

    The connector comes from the bridge identifier (system ``TASK_IDENTIFIER_PREFIX +
    name``); when several are present the one matching ``connector`` wins, else the first.
    ``connector`` is otherwise only a fallback for a *foreign* Task (one without a bridge
    identifier): it is returned as the connector name, and the external id is the Task's
    first identifier value, or failing that its ``id``. Without a bridge identifier and
    without ``connector`` this raises ``ValueError``, so foreign Tasks are never silently
    attributed to a connector.

    Foreign Tasks are read leniently where the meaning is clear (type code from any coding
    or ``code.text``, title from ``code.text`` when there is no description, a date-only
    ``authoredOn`` as midnight UTC) and strictly elsewhere: a status outside
    :class:`TaskStatus`, a ``for`` that is not a Patient, or malformed bridge-coded
    inputs/outputs raise ``ValueError``. Non-bridge inputs, outputs and business statuses
    are ignored.
    """
    name, external_id = _identity(task, connector)
    try:
        status = TaskStatus(task.status)
    except ValueError:
        raise ValueError(f"Task status {task.status!r} has no bridge equivalent") from None
    if task.authoredOn is None:
        raise ValueError("Task has no authoredOn")
    restriction = task.restriction
    period_end = restriction.period.end if restriction and restriction.period else None
    requester = task.requester
    assignment = AssignmentData(
        external_id=external_id,
        patient_external_id=_patient_id(task),
        clinician_external_id=(
            _reference_id(requester, "Practitioner", "requester") if requester else None
        ),
        type_code=_type_code(task),
        title=_title(task),
        assigned_at=from_fhir_datetime(task.authoredOn, "authoredOn"),
        due_at=None if period_end is None else from_fhir_datetime(period_end, "due"),
        repetitions=restriction.repetitions if restriction else None,
        status=status,
        **_inputs(task.input or ()),
    )
    return name, assignment, _completion(task.output or ()), _business_status(task)


def execution_period(task: Task) -> tuple[datetime, datetime | None] | None:
    """The ``executed`` argument that produced the Task, or None when it carries none."""
    period = task.executionPeriod
    if period is None or period.start is None:
        return None
    start = from_fhir_datetime(period.start, "executionPeriod.start")
    end = None if period.end is None else from_fhir_datetime(period.end, "executionPeriod.end")
    return start, end


def _identity(task: Task, connector: str | None) -> tuple[str, str]:
    ours: list[tuple[str, str]] = []
    for ident in task.identifier or ():
        system = ident.system or ""
        name = system[len(TASK_IDENTIFIER_PREFIX) :]
        if system.startswith(TASK_IDENTIFIER_PREFIX) and name and ident.value:
            ours.append((name, ident.value))
    for name, value in ours:
        if name == connector:
            return name, value
    if ours:
        return ours[0]
    if connector is None:
        raise ValueError(
            "Task has no homework-bridge identifier; pass connector= to read a foreign Task"
        )
    task_identifier_system(connector)  # same naming rule as when writing
    for ident in task.identifier or ():
        if ident.value:
            return connector, ident.value
    if task.id:
        return connector, task.id
    raise ValueError("foreign Task has neither an identifier value nor an id")


def _reference_id(ref: Reference, resource_type: str, what: str) -> str:
    """Id from a literal reference, or a logical one's identifier value."""
    if ref.reference:
        return external_id_from_reference(ref.reference, expected_type=resource_type)
    if ref.identifier is not None and ref.identifier.value:
        return ref.identifier.value
    raise ValueError(f"Task.{what} has neither a reference nor an identifier value")


def _patient_id(task: Task) -> str:
    if task.for_fhir is None:
        raise ValueError("Task has no 'for' (the patient)")
    return _reference_id(task.for_fhir, "Patient", "for")


def _code_in(cc: CodeableConcept | None, system: str) -> str | None:
    for coding in (cc.coding or ()) if cc else ():
        if coding.system == system and coding.code:
            return coding.code
    return None


def _type_code(task: Task) -> str:
    code = _code_in(task.code, ASSIGNMENT_TYPE_SYSTEM)
    if code:
        return code
    focus_id = task.focus.identifier if task.focus else None
    if focus_id is not None and focus_id.system == LIBRARY_SYSTEM and focus_id.value:
        return focus_id.value
    for coding in (task.code.coding or ()) if task.code else ():
        if coding.code:
            return coding.code
    if task.code is not None and task.code.text:
        return task.code.text
    raise ValueError("Task has no assignment type (code)")


def _title(task: Task) -> str:
    if task.description:
        return task.description
    if task.code is not None:
        if task.code.text:
            return task.code.text
        for coding in task.code.coding or ():
            if coding.display:
                return coding.display
    raise ValueError("Task has no description (the title)")


def _inputs(entries: Iterable[Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in entries:
        code = _code_in(entry.type, INPUT_SYSTEM)
        if code is None:
            continue
        attr = INPUT_FIELDS.get(code)
        if attr is None:
            raise ValueError(f"unknown bridge Task.input {code!r}")
        if attr in found:
            raise ValueError(f"duplicate bridge Task.input {code!r}")
        if entry.valueString is None:
            raise ValueError(f"Task.input {code!r} must be a valueString")
        found[attr] = entry.valueString
    return found


def _completion(entries: Iterable[Any]) -> CompletionData | None:
    single: dict[str, Any] = {}
    barriers: list[Barrier] = []
    for entry in entries:
        code = _code_in(entry.type, OUTPUT_SYSTEM)
        if code is None:
            continue
        if code not in OUTPUT_CODES:
            raise ValueError(f"unknown bridge Task.output {code!r}")
        value = _output_value(code, entry)
        if code == OUT_BARRIER:
            barriers.append(value)
        elif code in single:
            raise ValueError(f"duplicate bridge Task.output {code!r}")
        else:
            single[code] = value
    if not single and not barriers:
        return None
    missing = {OUT_STATUS, OUT_SOURCE, OUT_REPORTED_AT} - single.keys()
    if missing:
        raise ValueError(f"Task.output completion is missing {sorted(missing)}")
    return CompletionData(
        status=single[OUT_STATUS],
        source=single[OUT_SOURCE],
        reported_at=single[OUT_REPORTED_AT],
        quantity=single.get(OUT_QUANTITY),
        quality=single.get(OUT_QUALITY),
        barriers=tuple(barriers),
        reflection=single.get(OUT_REFLECTION),
    )


def _output_value(code: str, entry: Any) -> Any:
    """The typed value of one bridge output, checked against the type we write."""
    if code in (OUT_STATUS, OUT_BARRIER):
        if entry.valueCode is None:
            raise ValueError(f"Task.output {code!r} must be a valueCode")
        enum = CompletionStatus if code == OUT_STATUS else Barrier
        try:
            return enum(entry.valueCode)
        except ValueError:
            raise ValueError(f"Task.output {code!r} has unknown code {entry.valueCode!r}") from None
    if code in (OUT_QUANTITY, OUT_QUALITY):
        if entry.valueInteger is None:
            raise ValueError(f"Task.output {code!r} must be a valueInteger")
        return entry.valueInteger
    if code == OUT_REPORTED_AT:
        if entry.valueDateTime is None:
            raise ValueError(f"Task.output {code!r} must be a valueDateTime")
        return from_fhir_datetime(entry.valueDateTime, code)
    if entry.valueString is None:
        raise ValueError(f"Task.output {code!r} must be a valueString")
    return entry.valueString


def _business_status(task: Task) -> BusinessStatus | None:
    code = _code_in(task.businessStatus, BUSINESS_STATUS_SYSTEM)
    if code is None:
        return None
    try:
        return BusinessStatus(code)
    except ValueError:
        raise ValueError(f"unknown bridge businessStatus {code!r}") from None


# -- JSON ----------------------------------------------------------------------------


def task_from_json(text: str | bytes) -> Task:
    """Parse and validate a Task from FHIR JSON."""
    return Task.model_validate_json(text)


def task_to_json(task: Task) -> str:
    """Compact FHIR JSON (aliases such as ``for``; no nulls)."""
    return task.model_dump_json(exclude_none=True)


def with_business_status(text: str, status: BusinessStatus | None) -> str:
    """The stored Task JSON with only its bridge businessStatus replaced.

    Dispatch moves thousands of Tasks a minute from assigned to delivered; editing one
    field of the JSON costs a small fraction of validating and re-serialising the whole
    resource, and yields the same Task (a test holds the two paths equal).
    """
    body = json.loads(text)
    if status is None:
        body.pop("businessStatus", None)
    else:
        code = BusinessStatus(status).value
        body["businessStatus"] = {"coding": [_coding(BUSINESS_STATUS_SYSTEM, code)]}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
