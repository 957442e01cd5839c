"""A small, stateful stand-in FHIR R4 server for tests and benchmarks (httpx only).

It holds Tasks, Patients, Practitioners, Appointments, Encounters and DocumentReferences;
versions every write (``meta.versionId``, ``ETag``); searches Task by ``_lastUpdated``
(sorted), pages with ``Bundle.link[next]`` URLs and honours ``_include``; serves
``/metadata`` from its feature flags and a SMART token endpoint that verifies the client
assertion's signature. It can be told to misbehave: throttle (429 + Retry-After), fail
(5xx), time out, answer HTML, lose a response after acting, or break its next link.

Mount it with ``server.mount(respx_router)`` (tests) or use ``server.transport()`` as an
``httpx.MockTransport`` (benchmarks). It never touches the network.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt

FHIR_JSON = "application/fhir+json"


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.microsecond // 1000:03d}Z"
    )


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    issue = {"severity": severity, "code": code, "diagnostics": diagnostics}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


# -- resource builders -------------------------------------------------------------------


def task_resource(
    task_id: str,
    *,
    patient: str | None = "p1",
    requester: str | None = "dr1",
    status: str = "requested",
    code: tuple[str, str] = ("urn:example:homework", "thought_record"),
    description: str | None = "Thought record about work stress",
    authored: str = "2026-03-01T10:00:00Z",
    due: str | None = "2026-03-08T10:00:00Z",
    owner: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Task as an EHR would hold it: no bridge identifier, the EHR's own id."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": code[0], "code": code[1]}]},
        "authoredOn": authored,
    }
    if description:
        task["description"] = description
    if patient:
        task["for"] = {"reference": f"Patient/{patient}"}
        task["owner"] = {"reference": owner or f"Patient/{patient}"}
    if requester:
        task["requester"] = {"reference": f"Practitioner/{requester}"}
    if due:
        task["restriction"] = {"repetitions": 3, "period": {"end": due}}
    task.update(extra)
    return task


def patient_resource(
    patient_id: str,
    *,
    name: tuple[str, str] = ("Alex", "Client"),
    phone: str | None = "+13125550101",
    email: str | None = None,
    language: str | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"use": "official", "given": [name[0]], "family": name[1]}],
    }
    telecom = []
    if phone:
        telecom.append({"system": "phone", "value": phone, "use": "mobile"})
    if email:
        telecom.append({"system": "email", "value": email})
    if telecom:
        patient["telecom"] = telecom
    if language:
        patient["communication"] = [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language}]},
                "preferred": True,
            }
        ]
    if timezone:
        patient["extension"] = [
            {"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": timezone}
        ]
    return patient


def practitioner_resource(practitioner_id: str, name: tuple[str, str] = ("Ana", "Reyes")) -> dict:
    return {
        "resourceType": "Practitioner",
        "id": practitioner_id,
        "name": [{"given": [name[0]], "family": name[1], "prefix": ["Dr."]}],
    }


def appointment_resource(appt_id: str, patient: str, start: str, status: str = "booked") -> dict:
    end = iso(_instant(start) + timedelta(minutes=50))
    return {
        "resourceType": "Appointment",
        "id": appt_id,
        "status": status,
        "start": start,
        "end": end,
        "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}],
    }


def encounter_resource(enc_id: str, patient: str, start: str) -> dict:
    return {
        "resourceType": "Encounter",
        "id": enc_id,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient}"},
        "period": {"start": start},
    }


def notification(
    server: FakeFhirServer,
    task_ids: Iterable[str],
    *,
    full: bool = False,
    kind: str = "event-notification",
) -> dict[str, Any]:
    """An R4 Backport rest-hook notification Bundle (id-only unless ``full``)."""
    ids = list(task_ids)
    status = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/homework"}},
            {"name": "topic", "valueCanonical": "http://example.org/topics/task-changed"},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": kind},
            *[
                {
                    "name": "notification-event",
                    "part": [
                        {"name": "event-number", "valueString": str(n + 1)},
                        {"name": "focus", "valueReference": {"reference": f"Task/{task_id}"}},
                    ],
                }
                for n, task_id in enumerate(ids)
            ],
        ],
    }
    entries: list[dict[str, Any]] = [{"fullUrl": "urn:uuid:status-1", "resource": status}]
    for task_id in ids:
        entry: dict[str, Any] = {"fullUrl": f"{server.base}/Task/{task_id}"}
        if full:
            entry["resource"] = server.read("Task", task_id)
            entry["request"] = {"method": "PUT", "url": f"Task/{task_id}"}
            entry["response"] = {"status": "200"}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "history", "entry": entries}


# -- faults ---------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # throttle | fail | timeout | html | lost | edit | bad-request
    times: int
    path: str  # applies when this text is in "METHOD /path?query"
    retry_after: str | None = None
    status: int = 503


class FakeFhirServer:
    """Holds resources by type and id; every write bumps version and lastUpdated."""

    SEARCHABLE = ("Task", "Appointment", "DocumentReference", "Encounter")

    def __init__(
        self,
        base: str = "https://ehr.example.org/fhir",
        *,
        start: datetime = datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
        step: timedelta = timedelta(seconds=1),
        conditional_create: bool = True,
        versioned_update: bool = True,
        includes: bool = True,
        last_updated: bool = True,
        subscription: bool = True,
        smart: bool = True,
        require_auth: bool = False,
        token_lifetime: int = 300,
    ) -> None:
        self.base = base.rstrip("/")
        url = httpx.URL(self.base)
        self.origin = f"{url.scheme}://{url.netloc.decode()}"
        self.prefix = url.path.rstrip("/")
        self.token_url = f"{self.origin}/oauth2/token"
        self.now = start
        self.step = step
        self.conditional_create = conditional_create
        self.versioned_update = versioned_update
        self.includes = includes
        self.last_updated = last_updated
        self.subscription = subscription
        self.smart = smart
        self.require_auth = require_auth
        self.token_lifetime = token_lifetime
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.next_link_mode: str | None = None  # "loop" | "foreign"
        self.requests: list[httpx.Request] = []
        self.clients: dict[str, tuple[str, Any]] = {}  # kid -> (client_id, public key)
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (header, claims)
        self.tokens: set[str] = set()
        self._jtis: set[str] = set()
        self._searches: dict[str, tuple[str, list[str], list[str]]] = {}
        # Indexes, as a real server has: (lastUpdated, id) sorted per type; patient -> ids.
        self._by_updated: dict[str, list[tuple[str, str]]] = {}
        self._by_patient: dict[str, dict[str, set[str]]] = {}
        self._ids = itertools.count(1)

    # -- state -----------------------------------------------------------------------

    def tick(self) -> datetime:
        self.now += self.step
        return self.now

    def put(self, resource: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
        """Create or update (by id); assigns the next version and lastUpdated."""
        rtype = resource["resourceType"]
        stored = json.loads(json.dumps(resource))
        stored.setdefault("id", f"{rtype.lower()}-{next(self._ids)}")
        previous = self.resources.get(rtype, {}).get(stored["id"])
        version = int(previous["meta"]["versionId"]) + 1 if previous else 1
        when = at or self.tick()
        meta = dict(stored.get("meta") or {})
        meta.update(versionId=str(version), lastUpdated=iso(when))
        stored["meta"] = meta
        self.resources.setdefault(rtype, {})[stored["id"]] = stored
        self._index(rtype, previous, stored)
        return stored

    def _index(self, rtype: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        order = self._by_updated.setdefault(rtype, [])
        by_patient = self._by_patient.setdefault(rtype, {})
        if old is not None:
            key = (old["meta"]["lastUpdated"], old["id"])
            at = bisect.bisect_left(order, key)
            if at < len(order) and order[at] == key:
                del order[at]
            for ref in _patient_refs(old):
                by_patient.get(ref, set()).discard(old["id"])
        bisect.insort(order, (new["meta"]["lastUpdated"], new["id"]))
        for ref in _patient_refs(new):
            by_patient.setdefault(ref, set()).add(new["id"])

    def read(self, rtype: str, rid: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.resources[rtype][rid]))

    def all(self, rtype: str) -> list[dict[str, Any]]:
        return list(self.resources.get(rtype, {}).values())

    def fault(
        self,
        kind: str,
        times: int = 1,
        path: str = "",
        *,
        retry_after: str | None = None,
        status: int = 503,
    ) -> None:
        self.faults.append(Fault(kind, times, path, retry_after, status))

    def register_client(self, client_id: str, kid: str, public_key: Any) -> None:
        self.clients[kid] = (client_id, public_key)

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def count(self, method: str | None = None, path: str = "") -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and path in str(r.url)
        )

    # -- wiring ----------------------------------------------------------------------

    def mount(self, router: Any) -> None:
        """Route everything on this server's host to it (a respx router or mock)."""
        host = httpx.URL(self.base).host
        router.route(host=host).mock(side_effect=self.handle)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- dispatch --------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        label = f"{request.method} {request.url.raw_path.decode()}"
        fault = self._take_fault(label)
        if fault is not None and fault.kind not in ("lost", "edit"):
            return self._misbehave(fault, request)
        response = self._route(request)
        if fault is not None and fault.kind == "lost":
            raise httpx.ReadTimeout("the response was lost", request=request)
        if fault is not None and fault.kind == "edit":
            self._concurrent_edit(request)
        return response

    def _take_fault(self, label: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.path in label:
                fault.times -= 1
                return fault
        return None

    def _misbehave(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if fault.kind == "throttle":
            headers = {"Retry-After": fault.retry_after or "1"}
            return self._json(429, outcome("throttled", "Too many requests"), headers)
        if fault.kind == "html":
            html = b"<!DOCTYPE html><html><body><h1>Please sign in</h1></body></html>"
            return httpx.Response(200, content=html, headers={"Content-Type": "text/html"})
        if fault.kind == "bad-request":
            return self._json(400, outcome("invalid", "Unknown search parameter"))
        return self._json(fault.status, outcome("exception", "Service unavailable"))

    def _concurrent_edit(self, request: httpx.Request) -> None:
        rtype, rid = self._split(request.url.path)[:2]
        if rtype and rid:
            current = self.read(rtype, rid)
            current["note"] = [*current.get("note", []), {"text": "edited in the EHR"}]
            self.put(current)

    def _split(self, path: str) -> tuple[str | None, str | None, str | None]:
        rest = path[len(self.prefix) :].strip("/") if path.startswith(self.prefix) else None
        if rest is None:
            return None, None, None
        parts = rest.split("/") if rest else [""]
        return tuple((parts + [None, None, None])[:3])  # type: ignore[return-value]

    def _route(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if str(url).split("?")[0] == self.token_url and request.method == "POST":
            return self._token(request)
        rtype, rid, extra = self._split(url.path)
        if rtype == "metadata":
            return self._json(200, self.capability_statement())
        if rtype == ".well-known" and rid == "smart-configuration":
            if not self.smart:
                return self._json(404, outcome("not-found", "no SMART configuration"))
            return self._json(200, self.smart_configuration())
        if self.require_auth and not self._authorized(request):
            return self._json(401, outcome("login", "Bearer token missing or not valid"))
        params = list(url.params.multi_items())
        if rtype is None:
            return self._json(404, outcome("not-found", "unknown path"))
        if rtype == "" or "_getpages" in dict(params):
            return self._page_request(dict(params))
        if request.method == "GET" and rid is None:
            if rtype not in self.SEARCHABLE:
                return self._json(400, outcome("not-supported", f"no search on {rtype}"))
            return self._search(rtype, params)
        if request.method == "GET":
            return self._read(rtype, rid)
        if request.method == "POST" and rid is None:
            return self._create(rtype, request)
        if request.method == "PUT" and rid is not None:
            return self._update(rtype, rid, request)
        return self._json(405, outcome("not-supported", f"{request.method} not supported"))

    # -- auth ------------------------------------------------------------------------

    def _authorized(self, request: httpx.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))

        def refuse(why: str) -> httpx.Response:
            return httpx.Response(400, json={"error": "invalid_client", "error_description": why})

        if form.get("grant_type") != "client_credentials":
            return refuse("grant_type must be client_credentials")
        if form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return refuse("wrong client_assertion_type")
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            client_id, key = self.clients[header.get("kid")]
            claims = jwt.decode(
                assertion,
                key,
                algorithms=[header["alg"]],
                audience=self.token_url,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
            return refuse(f"assertion not verified: {type(exc).__name__}")
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            return refuse("iss and sub must be the client_id")
        if not 0 < claims["exp"] - claims["iat"] <= 300:
            return refuse("exp must be at most five minutes after iat")
        if claims["jti"] in self._jtis:
            return refuse("jti reused")
        self._jtis.add(claims["jti"])
        self.assertions.append((header, claims))
        token = f"token-{len(self.assertions)}"
        self.tokens.add(token)
        return httpx.Response(
            200,
            json={
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
                "scope": form.get("scope", ""),
            },
        )

    # -- metadata --------------------------------------------------------------------

    def capability_statement(self) -> dict[str, Any]:
        def resource(rtype: str, **more: Any) -> dict[str, Any]:
            codes = ["read", "search-type", "create", "update"]
            return {
                "type": rtype,
                "interaction": [{"code": c} for c in codes],
                **more,
            }

        task_params = [
            {"name": n, "type": t}
            for n, t in (
                *([("_lastUpdated", "date")] if self.last_updated else []),
                ("code", "token"),
                ("_tag", "token"),
                ("patient", "reference"),
                ("owner", "reference"),
            )
        ]
        task = resource(
            "Task",
            versioning="versioned-update" if self.versioned_update else "versioned",
            searchParam=task_params,
        )
        if self.includes:
            task["searchInclude"] = ["Task:patient", "Task:requester"]
        doc = resource(
            "DocumentReference",
            conditionalCreate=self.conditional_create,
            searchParam=[
                {"name": "identifier", "type": "token"},
                {"name": "patient", "type": "reference"},
            ],
        )
        resources = [task, doc] + [
            resource(t) for t in ("Patient", "Practitioner", "Appointment", "Encounter")
        ]
        if self.subscription:
            resources.append(resource("Subscription"))
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-01-01",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "software": {"name": "FakeFhirServer", "version": "1.0"},
            "rest": [{"mode": "server", "resource": resources}],
        }

    def smart_configuration(self) -> dict[str, Any]:
        return {
            "token_endpoint": self.token_url,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "capabilities": ["client-confidential-asymmetric"],
        }

    # -- REST ------------------------------------------------------------------------

    def _json(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        merged = {"Content-Type": FHIR_JSON, **(headers or {})}
        return httpx.Response(status, content=json.dumps(body).encode(), headers=merged)

    def _read(self, rtype: str, rid: str) -> httpx.Response:
        resource = self.resources.get(rtype, {}).get(rid)
        if resource is None:
            return self._json(404, outcome("not-found", f"{rtype}/{rid} is not known"))
        etag = f'W/"{resource["meta"]["versionId"]}"'
        return self._json(200, resource, {"ETag": etag})

    def _create(self, rtype: str, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        condition = request.headers.get("If-None-Exist")
        if condition and self.conditional_create:
            found = self._match(rtype, list(parse_qsl(condition)))
            if len(found) > 1:
                return self._json(412, outcome("duplicate", "several resources match"))
            if found:
                existing = self.resources[rtype][found[0]]
                return self._json(200, existing, self._location(existing))
        body.pop("id", None)
        stored = self.put(body)
        return self._json(201, stored, self._location(stored))

    def _location(self, resource: dict[str, Any]) -> dict[str, str]:
        rtype, rid, version = (
            resource["resourceType"],
            resource["id"],
            resource["meta"]["versionId"],
        )
        return {
            "Location": f"{self.base}/{rtype}/{rid}/_history/{version}",
            "ETag": f'W/"{version}"',
        }

    def _update(self, rtype: str, rid: str, request: httpx.Request) -> httpx.Response:
        current = self.resources.get(rtype, {}).get(rid)
        if current is None:
            return self._json(404, outcome("not-found", f"{rtype}/{rid} is not known"))
        wanted = request.headers.get("If-Match")
        stale = wanted and wanted.removeprefix("W/").strip('"') != current["meta"]["versionId"]
        if stale and self.versioned_update:
            return self._json(412, outcome("conflict", "version conflict"))
        body = json.loads(request.content)
        body["id"] = rid
        stored = self.put(body)
        return self._json(200, stored, {"ETag": f'W/"{stored["meta"]["versionId"]}"'})

    # -- search ----------------------------------------------------------------------

    def _match(self, rtype: str, params: list[tuple[str, str]]) -> list[str]:
        """Ids matching every parameter; indexed parameters narrow the candidates first."""
        store = self.resources.get(rtype, {})
        candidates: list[dict[str, Any]] | None = None
        rest = []
        for name, value in params:
            if candidates is None and name == "patient":
                ref = value if "/" in value else f"Patient/{value}"
                ids = self._by_patient.get(rtype, {}).get(ref, set())
                candidates = [store[i] for i in sorted(ids)]
            elif (
                candidates is None
                and name == "_lastUpdated"
                and value.startswith("gt")
                and self.last_updated
            ):
                order = self._by_updated.get(rtype, [])
                at = bisect.bisect_right(order, (iso(_instant(value[2:])), "\uffff"))
                candidates = [store[i] for _lu, i in order[at:]]
            else:
                rest.append((name, value))
        items = list(store.values()) if candidates is None else candidates
        for name, value in rest:
            items = [r for r in items if self._matches(r, name, value)]
        return [r["id"] for r in items]

    def _matches(self, r: dict[str, Any], name: str, value: str) -> bool:
        if name == "_lastUpdated":
            if not self.last_updated:
                return True  # ignored, as a server without it would
            return _compare(_instant(r["meta"]["lastUpdated"]), value)
        if name == "code":
            system, _, code = value.rpartition("|") if "|" in value else ("", "", value)
            return any(
                (not system or c.get("system") == system) and (not code or c.get("code") == code)
                for c in (r.get("code") or {}).get("coding", [])
            )
        if name == "_tag":
            system, _, code = value.rpartition("|")
            return any(
                t.get("code") == code and (not system or t.get("system") == system)
                for t in (r.get("meta") or {}).get("tag", [])
            )
        if name == "identifier":
            system, _, code = value.rpartition("|")
            return any(
                i.get("value") == code and (not system or i.get("system") == system)
                for i in r.get("identifier", [])
            )
        if name == "patient":
            return (value if "/" in value else f"Patient/{value}") in _patient_refs(r)
        if name == "status":
            return r.get("status") in value.split(",")
        if name == "date":
            start = r.get("start") or (r.get("period") or {}).get("start")
            return bool(start) and _compare(_instant(start), value)
        return True  # unknown parameters are ignored, as lenient servers do

    def _search(self, rtype: str, params: list[tuple[str, str]]) -> httpx.Response:
        control = {"_sort", "_count", "_include"}
        ids = self._match(rtype, [(k, v) for k, v in params if k not in control])
        sort = dict(params).get("_sort")
        items = [self.resources[rtype][i] for i in ids]
        if sort in ("_lastUpdated", "-_lastUpdated"):
            items.sort(key=lambda r: r["meta"]["lastUpdated"], reverse=sort.startswith("-"))
        elif sort in ("date", "-date"):
            items.sort(
                key=lambda r: r.get("start") or (r.get("period") or {}).get("start") or "",
                reverse=sort.startswith("-"),
            )
        count = int(dict(params).get("_count", "50"))
        includes = [v for k, v in params if k == "_include"] if self.includes else []
        search_id = f"s{next(self._ids)}"
        self._searches[search_id] = (rtype, [r["id"] for r in items], includes)
        return self._page(search_id, 0, count)

    def _page_request(self, params: dict[str, str]) -> httpx.Response:
        search_id = params.get("_getpages", "")
        if search_id not in self._searches:
            return self._json(410, outcome("not-found", "search expired"))
        return self._page(search_id, int(params.get("_offset", "0")), int(params["_count"]))

    def _page_url(self, search_id: str, offset: int, count: int) -> str:
        return f"{self.base}?_getpages={search_id}&_offset={offset}&_count={count}"

    def _page(self, search_id: str, offset: int, count: int) -> httpx.Response:
        rtype, ids, includes = self._searches[search_id]
        chunk = [self.resources[rtype][i] for i in ids[offset : offset + count]]
        entries: list[dict[str, Any]] = [
            {
                "fullUrl": f"{self.base}/{rtype}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in chunk
        ]
        seen: set[str] = set()
        for r in chunk:
            for inc in includes:
                field = {"Task:patient": "for", "Task:requester": "requester"}.get(inc)
                ref = (r.get(field) or {}).get("reference", "") if field else ""
                if "/" not in ref or ref in seen:
                    continue
                itype, iid = ref.split("/", 1)
                found = self.resources.get(itype, {}).get(iid)
                if found is not None:
                    seen.add(ref)
                    entries.append(
                        {
                            "fullUrl": f"{self.base}/{ref}",
                            "resource": found,
                            "search": {"mode": "include"},
                        }
                    )
        links = [{"relation": "self", "url": self._page_url(search_id, offset, count)}]
        if offset + count < len(ids):
            next_url = self._page_url(search_id, offset + count, count)
            if self.next_link_mode == "loop" and offset > 0:
                next_url = self._page_url(search_id, offset, count)
            elif self.next_link_mode == "foreign":
                next_url = next_url.replace(self.origin, "https://elsewhere.example.net")
            links.append({"relation": "next", "url": next_url})
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(ids),
            "link": links,
            "entry": entries,
        }
        return self._json(200, bundle)


def _patient_refs(r: dict[str, Any]) -> set[str]:
    refs = {(r.get(k) or {}).get("reference") for k in ("for", "subject", "patient")}
    refs |= {(p.get("actor") or {}).get("reference") for p in r.get("participant") or ()}
    return {ref for ref in refs if ref and ref.startswith("Patient/")}


def _compare(value: datetime, spec: str) -> bool:
    for prefix, test in (
        ("gt", lambda a, b: a > b),
        ("ge", lambda a, b: a >= b),
        ("lt", lambda a, b: a < b),
        ("le", lambda a, b: a <= b),
        ("eq", lambda a, b: a == b),
    ):
        if spec.startswith(prefix):
            return test(value, _instant(spec[2:]))
    return value == _instant(spec)


__all__ = [
    "FakeFhirServer",
    "Fault",
    "appointment_resource",
    "encounter_resource",
    "iso",
    "notification",
    "outcome",
    "patient_resource",
    "practitioner_resource",
    "task_resource",
]
