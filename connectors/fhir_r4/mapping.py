"""Pure mapping from FHIR R4 JSON to the bridge's events. No I/O, no clock.

Bundles are split with plain ``json`` and each entry is validated on its own with
``fhir.resources.R4B``: one malformed Task must cost a rejection, not the page. Validation
starts from the dict already parsed, so a resource is decoded once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from bridge.domain import (
    AssignmentCancelled,
    AssignmentData,
    AssignmentUpserted,
    ClinicianData,
    Event,
    PatientData,
)
from bridge.fhir import external_id_from_reference, task_to_assignment

MODELS: dict[str, type] = {
    "Task": Task,
    "Patient": Patient,
    "Practitioner": Practitioner,
    "Appointment": Appointment,
    "Encounter": Encounter,
}

# Task statuses the bridge's vocabulary lacks, read as the nearest bridge meaning.
OPEN_ALIASES = {"received": "requested", "accepted": "requested", "ready": "requested"}
CANCELLED = {
    "cancelled": "cancelled in source",
    "entered-in-error": "entered in error in source",
    "rejected": "rejected in source",
    "on-hold": "on hold in source",  # reminders stop; a resumed Task is upserted again
}
SKIPPED = {"draft"}  # not yet assigned: nothing to remind about, nothing to reject

TIMEZONE_EXTENSIONS = (
    "http://hl7.org/fhir/StructureDefinition/timezone",
    "http://hl7.org/fhir/StructureDefinition/tz-code",
)


class MappingError(ValueError):
    """One resource the bridge cannot use; becomes a Rejection with this message."""


# -- Bundles -------------------------------------------------------------------------


@dataclass(frozen=True)
class BundlePage:
    matches: list[dict[str, Any]]  # search.mode "match" (or unmarked) resources of the type
    included: dict[str, dict[str, Any]]  # "Type/id" -> resource, for _include'd references
    next_url: str | None
    problems: list[tuple[str | None, str]]  # (external id, reason) for unusable entries


def split_bundle(bundle: Mapping[str, Any], match_type: str) -> BundlePage:
    """Separate a searchset's matches from its includes; name entries that are not usable."""
    if bundle.get("resourceType") != "Bundle":
        raise MappingError(f"expected a Bundle, got {bundle.get('resourceType')!r}")
    matches: list[dict[str, Any]] = []
    included: dict[str, dict[str, Any]] = {}
    problems: list[tuple[str | None, str]] = []
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        entries = []
        problems.append((None, "Bundle.entry is not a list"))
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, dict):
            problems.append((None, "Bundle entry without a resource"))
            continue
        rtype = resource.get("resourceType")
        mode = (entry.get("search") or {}).get("mode") if isinstance(entry, Mapping) else None
        if rtype == "OperationOutcome":
            continue  # warnings a server adds to a searchset: nothing to map
        if rtype == match_type and mode in (None, "match"):
            matches.append(resource)
        elif isinstance(rtype, str) and isinstance(resource.get("id"), str):
            included[f"{rtype}/{resource['id']}"] = resource
    return BundlePage(matches, included, next_link(bundle), problems)


def next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, Mapping) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def validate(resource: Mapping[str, Any], expected: str) -> Any:
    """The resource as a validated R4B model, or MappingError with a short reason."""
    rtype = resource.get("resourceType")
    if rtype != expected:
        raise MappingError(f"expected a {expected}, got {rtype!r}")
    try:
        return MODELS[expected].model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise MappingError(
            f"{expected} failed validation at {where or '?'}: {first['msg']}{more}"
        ) from None


def last_updated(resource: Mapping[str, Any]) -> tuple[str, datetime] | None:
    """``meta.lastUpdated`` as (the server's string, aware UTC datetime), when well formed."""
    meta = resource.get("meta")
    raw = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        return raw, parse_instant(raw)
    except ValueError:
        return None


def version_key(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    if not isinstance(meta, Mapping):
        return None
    return meta.get("versionId") or meta.get("lastUpdated")


def parse_instant(value: str) -> datetime:
    """A FHIR instant; naive values (not legal FHIR) are read as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_instant(value: datetime) -> str:
    """UTC with millisecond precision, rounded down (for ``gt`` that only widens the window)."""
    value = value.astimezone(UTC)
    value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# -- references ------------------------------------------------------------------------


def reference_key(ref: str | None, expected_type: str) -> str | None:
    """ "Patient/123" for any literal reference to that type, else None."""
    if not ref:
        return None
    try:
        return f"{expected_type}/{external_id_from_reference(ref, expected_type=expected_type)}"
    except ValueError:
        return None


def task_requester_key(task: Task) -> str | None:
    return reference_key(task.requester.reference if task.requester else None, "Practitioner")


# -- Task -> events ----------------------------------------------------------------------


def task_disposition(task: Task) -> str:
    """'cancel', 'skip' or 'upsert': what a Task's status means for the bridge."""
    if task.status in CANCELLED:
        return "cancel"
    if task.status in SKIPPED:
        return "skip"
    return "upsert"


def owner_matches(task: Task, owner_type: str | None) -> bool:
    if owner_type is None:
        return True
    ref = task.owner.reference if task.owner and task.owner.reference else ""
    return reference_key(ref, owner_type) is not None


def cancelled_event(task: Task) -> AssignmentCancelled:
    return AssignmentCancelled(_task_id(task), CANCELLED.get(task.status, "cancelled in source"))


def task_assignment(task: Task, connector: str) -> AssignmentData:
    """The Task as an assignment keyed by its server id (what write-back and webhooks use).

    A requester that is not a Practitioner (a PractitionerRole, an Organization) is dropped
    rather than failing the Task: the homework still reaches the client.
    """
    task_id = _task_id(task)
    updates: dict[str, Any] = {}
    if task.status in OPEN_ALIASES:
        updates["status"] = OPEN_ALIASES[task.status]
    requester = task.requester
    unusable = requester is not None and task_requester_key(task) is None
    if unusable and (
        requester.reference or not (requester.identifier and requester.identifier.value)
    ):
        updates["requester"] = None
    if updates:
        task = task.model_copy(update=updates)
    try:
        _name, assignment, _completion, _business = task_to_assignment(task, connector=connector)
    except ValueError as exc:
        raise MappingError(str(exc)) from None
    return replace(assignment, external_id=task_id)


def _task_id(task: Task) -> str:
    if not task.id:
        raise MappingError("Task has no id")
    return task.id


def assignment_event(
    task: Task,
    connector: str,
    patient: PatientData | None,
    clinician: ClinicianData | None,
) -> AssignmentUpserted:
    return AssignmentUpserted(task_assignment(task, connector), patient, clinician)


def events_for_task(
    task: Task,
    connector: str,
    patient: PatientData | None,
    clinician: ClinicianData | None,
) -> list[Event]:
    disposition = task_disposition(task)
    if disposition == "cancel":
        return [cancelled_event(task)]
    if disposition == "skip":
        return []
    return [assignment_event(task, connector, patient, clinician)]


# -- Patient, Practitioner, Appointment ---------------------------------------------------


def _human_name(names: Iterable[Any] | None) -> str | None:
    order = {"usual": 0, "official": 1, "old": 5}
    ranked = sorted(names or (), key=lambda n: order.get(n.use or "", 2))
    for name in ranked:
        if name.text:
            return name.text
        parts = [*(name.given or ()), name.family or ""]
        joined = " ".join(p for p in parts if p)
        if joined:
            return joined
    return None


def _contact(telecom: Iterable[Any] | None, system: str) -> str | None:
    """The best current contact of one kind: mobile before home before work; never 'old'."""
    order = {"mobile": 0, "home": 1, "work": 2, "temp": 3}
    found = [
        t
        for t in telecom or ()
        if t.system == system and t.value and t.use != "old" and not (t.period and t.period.end)
    ]
    found.sort(key=lambda t: (t.rank or 99, order.get(t.use or "", 4)))
    return found[0].value if found else None


def _language(patient: Patient) -> str | None:
    comms = patient.communication or ()
    ordered = sorted(comms, key=lambda c: 0 if c.preferred else 1)
    for comm in ordered:
        for coding in comm.language.coding or ():
            if coding.code:
                return coding.code
        if comm.language.text:
            return None  # free text ("Spanish") is not a tag the templates can use
    return None


def _timezone(patient: Patient) -> str | None:
    for ext in patient.extension or ():
        if ext.url in TIMEZONE_EXTENSIONS or ext.url.endswith("/timezone"):
            value = ext.valueCode or ext.valueString
            if value:
                return value
    return None


def patient_data(patient: Patient) -> PatientData:
    """Contact details as the source holds them; the core decides if they are usable."""
    if not patient.id:
        raise MappingError("Patient has no id")
    return PatientData(
        external_id=patient.id,
        name=_human_name(patient.name) or "(no name on file)",
        phone=_contact(patient.telecom, "sms") or _contact(patient.telecom, "phone"),
        email=_contact(patient.telecom, "email"),
        language=_language(patient),
        timezone=_timezone(patient),
    )


def clinician_data(practitioner: Practitioner) -> ClinicianData:
    if not practitioner.id:
        raise MappingError("Practitioner has no id")
    return ClinicianData(practitioner.id, _human_name(practitioner.name) or practitioner.id)


def appointment_start(bundle: Mapping[str, Any], now: datetime) -> datetime | None:
    """The earliest booked start after ``now`` in an Appointment searchset."""
    starts = []
    for raw in split_bundle(bundle, "Appointment").matches:
        try:
            appt = validate(raw, "Appointment")
        except MappingError:
            continue
        if appt.status == "booked" and isinstance(appt.start, datetime):
            start = appt.start.astimezone(UTC)
            if start > now:
                starts.append(start)
    return min(starts) if starts else None


# -- Subscription notifications (R4 Backport; R5 SubscriptionStatus read alike) -------------


@dataclass(frozen=True)
class Notification:
    kind: str  # event-notification, handshake, heartbeat, query-status, query-event
    task_ids: list[str]  # changed Tasks, in the order notified, each once
    resources: dict[str, dict[str, Any]]  # "Type/id" -> resource, for full-resource payloads


def read_notification(bundle: Any) -> Notification:
    """The changed Task ids (and any resources sent in full) from a notification Bundle."""
    if isinstance(bundle, Mapping) and bundle.get("resourceType") == "Task":
        # A plain R4 rest-hook with the resource as its body (Medplum's default payload).
        if not isinstance(bundle.get("id"), str):
            raise MappingError("notified Task has no id")
        return Notification(
            "event-notification", [bundle["id"]], {f"Task/{bundle['id']}": dict(bundle)}
        )
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise MappingError("notification is not a FHIR Bundle")
    if bundle.get("type") not in ("history", "subscription-notification"):
        raise MappingError(f"notification Bundle has type {bundle.get('type')!r}, not history")
    entries = [e for e in bundle.get("entry") or () if isinstance(e, Mapping)]
    status = entries[0].get("resource") if entries else None
    if not isinstance(status, Mapping) or status.get("resourceType") not in (
        "Parameters",
        "SubscriptionStatus",
    ):
        raise MappingError("notification does not start with a SubscriptionStatus")
    kind, focus = _status_parts(status)
    ids: dict[str, None] = {}
    resources: dict[str, dict[str, Any]] = {}
    for entry in entries[1:]:
        resource = entry.get("resource")
        if isinstance(resource, dict) and isinstance(resource.get("id"), str):
            key = f"{resource.get('resourceType')}/{resource['id']}"
            resources[key] = resource
            if resource.get("resourceType") == "Task":
                ids[resource["id"]] = None
        elif (key := reference_key(entry.get("fullUrl"), "Task")) is not None:
            ids[key.split("/", 1)[1]] = None
    for ref in focus:
        if (key := reference_key(ref, "Task")) is not None:
            ids[key.split("/", 1)[1]] = None
    return Notification(kind, list(ids), resources)


def _status_parts(status: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(notification type, focus references) from Parameters or SubscriptionStatus."""
    if status.get("resourceType") == "SubscriptionStatus":
        events = status.get("notificationEvent") or ()
        refs = [((e.get("focus") or {}).get("reference")) for e in events if isinstance(e, Mapping)]
        return str(status.get("type") or "event-notification"), [r for r in refs if r]
    kind = "event-notification"
    refs: list[str] = []
    for param in status.get("parameter") or ():
        if not isinstance(param, Mapping):
            continue
        if param.get("name") == "type" and param.get("valueCode"):
            kind = str(param["valueCode"])
        if param.get("name") == "notification-event":
            for part in param.get("part") or ():
                if isinstance(part, Mapping) and part.get("name") == "focus":
                    ref = (part.get("valueReference") or {}).get("reference")
                    if ref:
                        refs.append(ref)
    return kind, refs
