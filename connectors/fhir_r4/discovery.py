"""What the server can do, read from its CapabilityStatement and SMART configuration.

The connector adapts instead of assuming: no conditional create means a search by our note
identifier before every retry; no versioned update means read-merge-write without
``If-Match``; ``_include`` support saves one GET per Patient. The report is also what
``bridge check`` prints, so IT staff see the consequences before the first poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INCLUDE_PATIENT = "Task:patient"
INCLUDE_REQUESTER = "Task:requester"


@dataclass(frozen=True)
class Capabilities:
    """The handful of facts the connector acts on. Defaults are the cautious reading."""

    reachable: bool = False
    fhir_version: str | None = None
    software: str | None = None
    task_search: bool = True
    task_last_updated: bool = True  # a core search parameter; most servers omit it from lists
    task_sort: bool = True
    task_includes: frozenset[str] = frozenset()
    task_update: bool = False
    task_versioned_update: bool = False
    doc_create: bool = True
    doc_conditional_create: bool = False
    doc_identifier_search: bool = True
    appointment_search: bool = True
    encounter_search: bool = True
    subscription: bool = False
    token_endpoint: str | None = None
    problems: tuple[str, ...] = field(default=())


def _resources(statement: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], set[str]]:
    """Resource entries by type, and the search parameters the server declares for all types."""
    by_type: dict[str, Mapping[str, Any]] = {}
    common: set[str] = set()
    for rest in _list(statement.get("rest")):
        if rest.get("mode", "server") != "server":
            continue
        common |= _names(rest.get("searchParam"))
        for resource in _list(rest.get("resource")):
            if isinstance(resource.get("type"), str):
                by_type[resource["type"]] = resource
    return by_type, common


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [x for x in value if isinstance(x, Mapping)] if isinstance(value, list) else []


def _names(params: Any) -> set[str]:
    return {p["name"] for p in _list(params) if isinstance(p.get("name"), str)}


def _interactions(resource: Mapping[str, Any] | None) -> set[str]:
    if resource is None:
        return set()
    return {i["code"] for i in _list(resource.get("interaction")) if isinstance(i.get("code"), str)}


def read_capabilities(
    statement: Mapping[str, Any] | None, smart: Mapping[str, Any] | None = None
) -> Capabilities:
    """Pure: the facts in a CapabilityStatement (dict) and a SMART configuration (dict)."""
    token = smart.get("token_endpoint") if isinstance(smart, Mapping) else None
    token = token if isinstance(token, str) else None
    if not isinstance(statement, Mapping) or statement.get("resourceType") != "CapabilityStatement":
        return Capabilities(
            token_endpoint=token,
            problems=("no CapabilityStatement at /metadata: assuming the least",),
        )
    by_type, common = _resources(statement)
    task = by_type.get("Task")
    doc = by_type.get("DocumentReference")
    task_params = _names(task.get("searchParam")) | common if task else common
    doc_params = _names(doc.get("searchParam")) | common if doc else common
    software = statement.get("software")
    software_name = None
    if isinstance(software, Mapping) and software.get("name"):
        software_name = " ".join(str(software[k]) for k in ("name", "version") if software.get(k))
    return Capabilities(
        reachable=True,
        fhir_version=statement.get("fhirVersion"),
        software=software_name,
        task_search="search-type" in _interactions(task),
        # Servers that list search parameters but not _lastUpdated usually still support it
        # (it applies to every resource); only an explicit, non-empty list without it counts.
        task_last_updated=not task_params or "_lastUpdated" in task_params,
        task_sort=True,
        task_includes=frozenset(
            x for x in (task.get("searchInclude") if task else None) or () if isinstance(x, str)
        ),
        task_update="update" in _interactions(task),
        task_versioned_update=bool(task) and task.get("versioning") == "versioned-update",
        doc_create="create" in _interactions(doc),
        doc_conditional_create=bool(doc) and doc.get("conditionalCreate") is True,
        doc_identifier_search=not doc_params or "identifier" in doc_params,
        appointment_search="search-type" in _interactions(by_type.get("Appointment")),
        encounter_search="search-type" in _interactions(by_type.get("Encounter")),
        subscription="Subscription" in by_type,
        token_endpoint=token,
    )


def describe(caps: Capabilities, *, write_task_updates: bool, require_encounter: bool) -> list[str]:
    """Plain lines for ``bridge check``: what the server lacks and what the bridge does instead."""
    lines = list(caps.problems)
    if caps.reachable:
        lines.append(
            "server: FHIR "
            + (caps.fhir_version or "(version not stated)")
            + (f", {caps.software}" if caps.software else "")
        )
    if not caps.task_search:
        lines.append("server does not advertise Task search: polling will likely fail")
    if not caps.task_last_updated:
        lines.append(
            "server lacks _lastUpdated on Task search: every poll re-reads all homework Tasks"
        )
    if {INCLUDE_PATIENT, INCLUDE_REQUESTER} <= caps.task_includes:
        lines.append("Task search includes Patient and Practitioner: no extra reads per client")
    else:
        lines.append("server lacks Task _include: one read per distinct client and clinician")
    if caps.doc_conditional_create:
        lines.append("notes are created with If-None-Exist on the bridge's note identifier")
    else:
        lines.append(
            "server lacks conditional create on DocumentReference: notes are checked by "
            "identifier search before each retry"
        )
    if caps.reachable and not caps.doc_create:
        lines.append("server does not advertise DocumentReference create: write-back will fail")
    if write_task_updates:
        if caps.task_versioned_update:
            lines.append("Task updates use If-Match on the version read (412: re-read and merge)")
        else:
            lines.append(
                "server lacks versioned Task update: Task changes are read-merge-write "
                "without If-Match (a concurrent edit in the EHR can be overwritten)"
            )
    if require_encounter and not caps.encounter_search:
        lines.append("require_encounter is on but the server lacks Encounter search")
    if caps.subscription:
        lines.append("server offers Subscription: rest-hook notifications can replace polling")
    return lines
