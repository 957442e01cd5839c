"""The ``fhir`` connector: homework Tasks from any FHIR R4 server, notes back to it.

Polls Task by ``_lastUpdated`` with a small lookback, one Page per Bundle page whose cursor
is the newest ``meta.lastUpdated`` seen so far; reads each client and clinician once per
poll (or takes them from ``_include``); accepts Subscription rest-hook notifications; writes
each note exactly once, keyed by the bridge's identifier. What the server cannot do is read
from its CapabilityStatement (:mod:`.discovery`), never assumed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx

from bridge.clock import Clock
from bridge.connector import Connector, WebhookRejected
from bridge.domain import (
    AppointmentBooked,
    AssignmentCancelled,
    AssignmentUpserted,
    ClinicianData,
    CompletionStatus,
    Event,
    NoteWrite,
    Page,
    Rejection,
)
from bridge.errors import ConfigError, FatalError
from bridge.fhir import external_id_from_reference
from bridge.fhir.note import LOINC_SYSTEM, PROGRESS_NOTE_CODE
from bridge.http import RetryPolicy
from connectors.fhir_r4 import mapping as m
from connectors.fhir_r4.auth import Auth, SmartBackend, StaticBearer, load_private_key
from connectors.fhir_r4.client import (
    FhirClient,
    FhirError,
    FhirRejected,
    FhirTransient,
    error_for,
    etag_version,
    json_body,
)
from connectors.fhir_r4.config import BearerAuth, FhirOptions, SmartBackendAuth
from connectors.fhir_r4.discovery import (
    INCLUDE_PATIENT,
    INCLUDE_REQUESTER,
    Capabilities,
    describe,
    read_capabilities,
)
from connectors.fhir_r4.notes import document_for_server, merge_task_update

log = logging.getLogger(__name__)

TASK_UPDATE_TRIES = 3  # the first PUT and two more after a 412
NOTE_SEARCH_PAGES = 5
NO_ENCOUNTER_RETRY = 3600.0


class _Resolver:
    """Referenced resources for one poll or notification: each one read at most once."""

    def __init__(self, client: FhirClient) -> None:
        self._client = client
        self._raw: dict[str, dict[str, Any]] = {}
        self._done: dict[str, Any] = {}

    def offer(self, resources: Mapping[str, dict[str, Any]]) -> None:
        """Resources the server sent along (``_include``, full-resource notifications)."""
        for key, raw in resources.items():
            self._raw.setdefault(key, raw)

    def get(self, key: str, rtype: str) -> Any:
        """The validated resource, or MappingError (cached too: a 404 is not asked twice)."""
        if key not in self._done:
            try:
                raw = self._raw.get(key)
                if raw is None:
                    raw, _ = self._client.get_json(key)
                self._done[key] = m.validate(raw, rtype)
            except FhirRejected as exc:
                self._done[key] = m.MappingError(f"cannot read {key}: {exc}")
            except m.MappingError as exc:
                self._done[key] = exc
        found = self._done[key]
        if isinstance(found, Exception):
            raise found
        return found

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._done:
            self._done[key] = compute()
        return self._done[key]


class FhirConnector(Connector):
    Options = FhirOptions
    options: FhirOptions

    def __init__(
        self,
        name: str,
        options: FhirOptions,
        *,
        clock: Clock,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        http = http or httpx.Client(follow_redirects=False)
        super().__init__(name, options, clock=clock, http=http)
        policy = RetryPolicy(
            attempts=options.max_retries + 1, sleep=sleep if sleep is not None else time.sleep
        )
        self.client = FhirClient(options.base_url, http, Auth(), policy, options.timeout_seconds)
        self.client.auth = self._build_auth()
        self._caps: Capabilities | None = None
        self._smart: dict[str, Any] | None = None
        # Task id -> (version, lastUpdated) of Tasks on pages the core has committed: the
        # lookback window re-reads them, and an unchanged one needs no second look.
        self._committed: dict[str, tuple[str | None, datetime]] = {}
        # "Patient/x" -> (when looked up, next booked start): sessions move rarely, and a
        # changed Task should not cost a search for a client we asked about minutes ago.
        self._sessions: dict[str, tuple[datetime, datetime | None]] = {}

    # -- set-up ----------------------------------------------------------------------

    def _build_auth(self) -> Auth:
        auth = self.options.auth
        if isinstance(auth, BearerAuth):
            return StaticBearer(auth.token.get_secret_value())
        if isinstance(auth, SmartBackendAuth):
            try:
                key = load_private_key(auth.private_key_path, auth.algorithm)
            except ValueError as exc:
                raise ConfigError(f"auth.private_key_path: {exc}") from None
            return SmartBackend(
                client_id=auth.client_id,
                key=key,
                algorithm=auth.algorithm,
                kid=auth.kid,
                scope=auth.scope,
                token_url=self._token_url,
                post=self.client.post_form,
                clock=self.clock,
            )
        return Auth()

    def _token_url(self) -> str:
        auth = self.options.auth
        assert isinstance(auth, SmartBackendAuth)
        if auth.token_url:
            return auth.token_url
        smart = self.smart_configuration()
        token = smart.get("token_endpoint") if smart else None
        if not isinstance(token, str) or not token:
            raise ConfigError(
                "auth.token_url is not set and the server's .well-known/smart-configuration "
                "names no token_endpoint"
            )
        return token

    def smart_configuration(self) -> dict[str, Any] | None:
        """``{base}/.well-known/smart-configuration``, read once; None where there is none."""
        if self._smart is None:
            response = self.client.send(
                "GET", ".well-known/smart-configuration", authenticate=False
            )
            if response.status_code in (404, 410):
                return None
            if response.status_code >= 300:
                raise error_for(response)
            self._smart = json_body(response)
        return self._smart

    def capabilities(self) -> Capabilities:
        """The server's CapabilityStatement, read once per connector (``discover`` re-reads)."""
        if self._caps is None:
            self._caps = self._read_capabilities()
        return self._caps

    def _read_capabilities(self) -> Capabilities:
        try:
            response = self.client.send("GET", "metadata", authenticate=False)
            if response.status_code == 401:  # some servers protect /metadata too
                response = self.client.send("GET", "metadata")
            if response.status_code >= 300:
                raise error_for(response)
            statement = json_body(response)
        except FhirRejected as exc:
            return Capabilities(problems=(f"cannot read the CapabilityStatement: {exc}",))
        return read_capabilities(statement, self._smart)

    def discover(self) -> Capabilities:
        """Read /metadata and the SMART configuration afresh: the structured report."""
        self._caps = None
        self._smart = None
        caps = self._read_capabilities()
        if caps.token_endpoint is None:
            try:
                smart = self.smart_configuration()
            except FhirError:
                smart = None
            if smart and isinstance(smart.get("token_endpoint"), str):
                caps = replace(caps, token_endpoint=smart["token_endpoint"])
        self._caps = caps
        return caps

    def describe(self) -> list[str]:
        o = self.options
        lines = [
            f"FHIR R4 at {o.base_url}, auth {o.auth.type}, pages of {o.page_size}, "
            f"lookback {o.lookback_seconds:g}s, notes as {o.note_content_type}",
            "Subscription notifications on" if o.notification_secret else "no notifications",
        ]
        try:
            caps = self.discover()
        except (FhirError, ConfigError) as exc:
            return [*lines, f"server not reachable: {exc}"]
        return lines + describe(
            caps, write_task_updates=o.write_task_updates, require_encounter=o.require_encounter
        )

    # -- poll ------------------------------------------------------------------------

    def _search_params(self, since: datetime | None, caps: Capabilities) -> list[tuple[str, str]]:
        o = self.options
        params = [*o.search_params.items(), *o.task_filter.search_params()]
        if since is not None and caps.task_last_updated:
            window = since - timedelta(seconds=o.lookback_seconds)
            params.append(("_lastUpdated", "gt" + m.format_instant(window)))
        params += [("_sort", "_lastUpdated"), ("_count", str(o.page_size))]
        params += [("_include", x) for x in (INCLUDE_PATIENT, INCLUDE_REQUESTER)]
        return [p for p in params if p[0] != "_include" or p[1] in caps.task_includes]

    def poll(self, cursor: str | None) -> Iterator[Page]:
        since = _parse_cursor(cursor)
        caps = self.capabilities()
        self._forget_before(since)
        resolver = _Resolver(self.client)
        best: tuple[str, datetime] | None = (cursor, since) if cursor and since else None
        floor = None
        if since is not None and not caps.task_last_updated:
            floor = since - timedelta(seconds=self.options.lookback_seconds)
        url, params = "Task", self._search_params(since, caps)
        followed: set[str] = set()
        while True:
            try:
                bundle, _ = self.client.get_json(url, params)
                page = m.split_bundle(bundle, "Task")
            except (FhirRejected, m.MappingError) as exc:
                reason = f"Task search stopped: {exc}"
                yield Page(cursor=best[0] if best else None, rejections=[Rejection(None, reason)])
                return
            resolver.offer(page.included)
            events: list[Event] = []
            rejections = [Rejection(ext, reason) for ext, reason in page.problems]
            committed: dict[str, tuple[str | None, datetime]] = {}
            for raw in page.matches:
                stamp = m.last_updated(raw)
                if stamp is not None and (best is None or stamp[1] > best[1]):
                    best = stamp
                if floor is not None and stamp is not None and stamp[1] <= floor:
                    continue  # no server-side _lastUpdated: filtered here instead
                if self._unchanged(raw):
                    continue
                new_events, rejection = self._task_events(raw, resolver)
                events += new_events
                if rejection is not None:
                    rejections.append(rejection)
                if isinstance(raw.get("id"), str) and stamp is not None:
                    committed[raw["id"]] = (m.version_key(raw), stamp[1])
            next_url = self._absolute(page.next_url)
            stop = self._refuse_link(next_url, followed) if next_url else None
            if stop:
                rejections.append(Rejection(None, stop))
            yield Page(events=events, cursor=best[0] if best else None, rejections=rejections)
            self._committed.update(committed)  # the core asked for more: that page is saved
            if not next_url or stop:
                return
            followed.add(next_url)
            url, params = next_url, None

    def _absolute(self, url: str | None) -> str | None:
        """A next link made absolute (a few servers send relative ones)."""
        if not url:
            return None
        try:
            return str(httpx.URL(self.client.base_url + "/").join(url))
        except (httpx.InvalidURL, TypeError):
            return url

    def _refuse_link(self, url: str, followed: set[str]) -> str | None:
        """Why a next link must not be followed, or None."""
        if url in followed:
            return f"Loop detected in pagination: the server repeated a next link ({_path(url)})"
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            return "the server's next link is not a URL"
        base = httpx.URL(self.client.base_url)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            return f"the server's next link points to another host ({target.host}): not followed"
        return None

    def _unchanged(self, raw: Mapping[str, Any]) -> bool:
        seen = self._committed.get(raw.get("id"))  # type: ignore[arg-type]
        return seen is not None and seen[0] is not None and seen[0] == m.version_key(raw)

    def _forget_before(self, since: datetime | None) -> None:
        if since is None:
            self._committed.clear()
            return
        edge = since - timedelta(seconds=self.options.lookback_seconds)
        self._committed = {k: v for k, v in self._committed.items() if v[1] > edge}

    def _task_events(
        self, raw: Mapping[str, Any], resolver: _Resolver
    ) -> tuple[list[Event], Rejection | None]:
        """Events for one Task; a Task the bridge cannot use becomes a Rejection instead."""
        task_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        try:
            task = m.validate(raw, "Task")
            if not m.owner_matches(task, self.options.task_filter.owner_type):
                return [], None
            disposition = m.task_disposition(task)
            if disposition != "upsert":
                return m.events_for_task(task, self.name, None, None), None
            assignment = m.task_assignment(task, self.name)
            patient_key = f"Patient/{assignment.patient_external_id}"
            patient = m.patient_data(resolver.get(patient_key, "Patient"))
            clinician = self._clinician(m.task_requester_key(task), resolver)
            events: list[Event] = [AssignmentUpserted(assignment, patient, clinician)]
            if assignment.due_at is None and assignment.status.is_open:
                start = self._next_appointment(patient_key, resolver)
                if start is not None:
                    events.append(AppointmentBooked(patient.external_id, start))
            return events, None
        except m.MappingError as exc:
            return [], Rejection(task_id, str(exc))

    def _clinician(self, key: str | None, resolver: _Resolver) -> ClinicianData | None:
        if key is None:
            return None
        try:
            return m.clinician_data(resolver.get(key, "Practitioner"))
        except m.MappingError as exc:
            log.warning("clinician %s unusable, homework kept without one: %s", key, exc)
            return None

    def _next_appointment(self, patient_key: str, resolver: _Resolver) -> datetime | None:
        """The client's next booked session (bounds homework that has no due date)."""
        if not self.capabilities().appointment_search:
            return None
        now = self.clock.now()

        def search() -> datetime | None:
            params = [
                *self.options.search_params.items(),
                ("patient", patient_key),
                ("date", "ge" + m.format_instant(now)),
                ("status", "booked"),
                ("_sort", "date"),
                ("_count", "1"),
            ]
            try:
                bundle, _ = self.client.get_json("Appointment", params)
                return m.appointment_start(bundle, now)
            except (FhirRejected, m.MappingError) as exc:
                log.warning("appointment search failed for a client: %s", exc)
                return None

        ttl = timedelta(seconds=self.options.appointment_cache_seconds)
        cached = self._sessions.get(patient_key)
        if cached is not None and now - cached[0] < ttl and (cached[1] is None or cached[1] > now):
            return cached[1]
        start = resolver.memo(f"next-appointment:{patient_key}", search)
        if ttl:
            self._sessions[patient_key] = (now, start)
        return start

    # -- notifications ---------------------------------------------------------------

    def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """A Subscription rest-hook notification (R4 Backport), verified before it is read."""
        self._verify(headers, body)
        try:
            bundle = json.loads(body)
        except ValueError:
            raise ValueError("notification is not JSON") from None
        note = m.read_notification(bundle)
        if note.kind in ("handshake", "heartbeat"):
            return []
        resolver = _Resolver(self.client)
        resolver.offer(note.resources)
        events: list[Event] = []
        for task_id in note.task_ids:
            raw = note.resources.get(f"Task/{task_id}")
            if raw is None:
                try:
                    raw, _ = self.client.get_json(f"Task/{task_id}")
                except FhirRejected as exc:
                    if exc.status in (404, 410):
                        events.append(AssignmentCancelled(task_id, "no longer in source"))
                    else:
                        log.warning("notified Task %s unreadable: %s", task_id, exc)
                    continue
            new_events, rejection = self._task_events(raw, resolver)
            events += new_events
            if rejection is not None:
                log.warning("notified Task rejected: %s", rejection.reason)
        return events

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        secret = self.options.notification_secret
        if secret is None:
            raise WebhookRejected("notifications are not enabled (no notification_secret)")
        key = secret.get_secret_value().encode()
        lower = {k.lower(): v for k, v in headers.items()}
        authorization = lower.get("authorization", "")
        if authorization[:7].lower() == "bearer " and hmac.compare_digest(
            authorization[7:].strip().encode(), key
        ):
            return
        signature = lower.get("x-signature", "").strip().lower().removeprefix("sha256=")
        expected = hmac.new(key, body, hashlib.sha256).hexdigest()
        if signature and hmac.compare_digest(signature.encode(), expected.encode()):
            return
        raise WebhookRejected("notification sender could not be verified")

    # -- write-back ------------------------------------------------------------------

    def write_note(self, note: NoteWrite) -> str:
        try:
            return self._write_note(note)
        except ConfigError as exc:  # a token the server will not give us: retry, bounded
            raise FhirTransient(f"cannot authenticate: {exc}") from None

    def _write_note(self, note: NoteWrite) -> str:
        caps = self.capabilities()
        identifier = f"{note.identifier_system}|{note.identifier_value}"
        patient_ref = f"Patient/{note.patient_external_id}"
        if note.attempt > 1 or not caps.doc_conditional_create:
            found = self._find_note(note, patient_ref)
            if found is not None:
                self._update_task(note, found)
                return found
        encounter = self._encounter(patient_ref) if self.options.require_encounter else None
        try:
            doc = document_for_server(
                note, content_type=self.options.note_content_type, encounter_ref=encounter
            )
        except ValueError as exc:
            raise FatalError(f"the note is not a valid DocumentReference: {exc}") from None
        headers = {}
        if caps.doc_conditional_create:
            headers["If-None-Exist"] = f"identifier={identifier}"
        response = self.client.send(
            "POST",
            "DocumentReference",
            json_body=doc,
            headers=headers,
            idempotent=caps.doc_conditional_create,
        )
        if response.status_code >= 300:
            raise error_for(response)
        doc_id = _created_id(response)
        self._update_task(note, doc_id)
        return doc_id

    def _find_note(self, note: NoteWrite, patient_ref: str) -> str | None:
        """Our note's id if it already landed (matched on the identifier, not just found).

        A server that refuses the ``identifier`` parameter (400) is asked for the client's
        progress notes instead, and our identifier is looked for in what comes back.
        """
        common = list(self.options.search_params.items())
        by_identifier = [
            *common,
            ("identifier", f"{note.identifier_system}|{note.identifier_value}"),
            ("patient", patient_ref),
        ]
        try:
            return self._scan_notes(note, by_identifier)
        except FhirRejected as exc:
            if exc.status != 400:
                raise
            log.info("identifier search refused (%s); scanning the client's notes", exc)
        by_type = [
            *common,
            ("patient", patient_ref),
            ("type", f"{LOINC_SYSTEM}|{PROGRESS_NOTE_CODE}"),
        ]
        return self._scan_notes(note, by_type)

    def _scan_notes(self, note: NoteWrite, params: list[tuple[str, str]] | None) -> str | None:
        url = "DocumentReference"
        followed: set[str] = set()
        for _ in range(NOTE_SEARCH_PAGES):
            bundle, _ = self.client.get_json(url, params)
            for raw in m.split_bundle(bundle, "DocumentReference").matches:
                if raw.get("status") != "entered-in-error" and _has_identifier(raw, note):
                    return str(raw["id"])
            next_url = self._absolute(m.next_link(bundle))
            if not next_url or self._refuse_link(next_url, followed):
                return None
            followed.add(next_url)
            url, params = next_url, None
        return None

    def _encounter(self, patient_ref: str) -> str:
        params = [*self.options.search_params.items(), ("patient", patient_ref)]
        params += [("_sort", "-date"), ("_count", "1")]
        bundle, _ = self.client.get_json("Encounter", params)
        for raw in m.split_bundle(bundle, "Encounter").matches:
            if isinstance(raw.get("id"), str):
                return f"Encounter/{raw['id']}"
        raise FhirTransient(
            "require_encounter is on and the client has no encounter yet",
            retry_after=NO_ENCOUNTER_RETRY,
        )

    def _update_task(self, note: NoteWrite, doc_id: str) -> None:
        """Task status/output/businessStatus, with If-Match; a 412 re-reads and merges."""
        if not self.options.write_task_updates:
            return
        caps = self.capabilities()
        path = f"Task/{note.assignment_external_id}"
        status = _task_status(note)
        for _ in range(TASK_UPDATE_TRIES):
            task, response = self.client.get_json(path)
            merged = merge_task_update(task, doc_id, status=status)
            if merged == task:
                return  # an earlier attempt already landed it
            headers = {}
            version = etag_version(response, task)
            if caps.task_versioned_update and version:
                headers["If-Match"] = f'W/"{version}"'
            answer = self.client.send("PUT", path, json_body=merged, headers=headers)
            if answer.status_code == 412:
                log.info("Task %s changed in the EHR meanwhile; re-reading and merging", path)
                continue
            if answer.status_code < 300:
                return
            error = error_for(answer)
            if isinstance(error, FhirTransient):
                raise error
            # The note itself landed; a Task the EHR will not let us touch is not worth
            # failing the write-back for (Epic, for one, limits Task writes).
            log.warning("note written but the Task update was refused: %s", error)
            return
        raise FhirTransient(f"PUT {path}: the Task kept changing (412 x{TASK_UPDATE_TRIES})")


def _parse_cursor(cursor: str | None) -> datetime | None:
    if not cursor:
        return None
    try:
        return m.parse_instant(cursor)
    except ValueError:
        raise FatalError(f"fhir cursor {cursor!r} is not a FHIR instant") from None


def _path(url: str) -> str:
    return url.split("?", 1)[0]


def _has_identifier(raw: Mapping[str, Any], note: NoteWrite) -> bool:
    return any(
        isinstance(i, Mapping)
        and i.get("system") == note.identifier_system
        and i.get("value") == note.identifier_value
        for i in raw.get("identifier") or ()
    )


def _created_id(response: httpx.Response) -> str:
    """The new (or, after If-None-Exist, the existing) resource's id."""
    location = response.headers.get("Location") or response.headers.get("Content-Location")
    if location:
        try:
            return external_id_from_reference(location, expected_type="DocumentReference")
        except ValueError:
            pass
    if response.content:
        body = json_body(response, "POST DocumentReference")
        if isinstance(body.get("id"), str):
            return body["id"]
    raise FhirRejected("POST DocumentReference: the server named no id for the note")


def _task_status(note: NoteWrite) -> str | None:
    """A new Task.status from the client's report: done closes the EHR's Task."""
    if note.completion is not None and note.completion.status == CompletionStatus.done:
        return "completed"
    return None


__all__ = ["FhirConnector"]
