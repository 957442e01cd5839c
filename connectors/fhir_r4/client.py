"""HTTP to one FHIR server: auth headers, bounded retries, and errors as readable data.

Every call goes through :func:`bridge.http.send_with_retries` (timeouts, 5xx and 429 with
``Retry-After`` are retried a bounded number of times). What comes back is classified once:
a FHIR error carries the server's ``OperationOutcome`` as one readable line, and an HTML page
where JSON was expected (a login wall, a proxy error page) is named as such.

FhirError
 ├── FhirTransient   (RetriableError)  still failing after the retries, or 401/403 (config)
 └── FhirRejected    (FatalError)      a 4xx that will not heal, HTML, or JSON that is not FHIR
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from bridge.errors import BridgeError, FatalError, RetriableError
from bridge.http import Action, RetryPolicy, classify, retry_after_seconds, send_with_retries
from connectors.fhir_r4.auth import Auth

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"


class FhirError(BridgeError):
    """Base of the errors this client raises; ``status`` is the HTTP status, if any."""

    status: int | None = None


class FhirTransient(FhirError, RetriableError):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        RetriableError.__init__(self, message, retry_after)
        self.status = status


class FhirRejected(FhirError, FatalError):
    def __init__(self, message: str, status: int | None = None) -> None:
        FatalError.__init__(self, message)
        self.status = status


def outcome_message(body: Any) -> str | None:
    """One line from an OperationOutcome: ``error/invalid: diagnostics; ...``."""
    if not isinstance(body, Mapping) or body.get("resourceType") != "OperationOutcome":
        return None
    parts = []
    for issue in body.get("issue") or ():
        if not isinstance(issue, Mapping):
            continue
        head = f"{issue.get('severity', '?')}/{issue.get('code', '?')}"
        details = issue.get("details") if isinstance(issue.get("details"), Mapping) else {}
        text = issue.get("diagnostics") or details.get("text")
        where = ", ".join(str(x) for x in issue.get("expression") or issue.get("location") or ())
        parts.append(head + (f": {text}" if text else "") + (f" (at {where})" if where else ""))
    return "; ".join(parts) or "OperationOutcome without issues"


def is_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").lower()
    if "html" in content_type:
        return True
    return response.content[:64].lstrip()[:1] == b"<"


def _what(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {_path(str(request.url))}"


def json_body(response: httpx.Response, what: str | None = None) -> dict[str, Any]:
    """The JSON object in a response, or FhirRejected saying what came instead."""
    what = what or _what(response)
    if is_html(response):
        raise FhirRejected(
            f"{what}: the server answered HTML (status {response.status_code}) instead of FHIR "
            "JSON; is base_url the FHIR endpoint, and is a proxy or login page in the way?",
            response.status_code,
        )
    try:
        body = json.loads(response.content)
    except ValueError:
        raise FhirRejected(
            f"{what}: the answer is not JSON (status {response.status_code})",
            response.status_code,
        ) from None
    if not isinstance(body, dict):
        raise FhirRejected(f"{what}: expected a JSON object", response.status_code)
    return body


def error_for(response: httpx.Response, what: str | None = None) -> FhirError:
    """The error a final non-2xx response stands for, with the server's own words."""
    what = what or _what(response)
    status = response.status_code
    try:
        detail = outcome_message(json.loads(response.content))
    except ValueError:
        detail = None
    if detail is None:
        detail = "HTML error page" if is_html(response) else (response.reason_phrase or "")
    message = f"{what}: {status} {detail}".rstrip()
    action = classify(status)
    if action in (Action.RETRY, Action.RATE_LIMITED):
        retry = retry_after_seconds(
            response.headers.get("Retry-After"), response.headers.get("Date")
        )
        return FhirTransient(message, status, retry)
    if action == Action.CONFIG:
        return FhirTransient(message + " (check the credentials and scopes)", status)
    return FhirRejected(message, status)


class _Ambiguous(Exception):
    """A non-idempotent request that may have landed: never retried blind."""


class FhirClient:
    """Requests against ``base_url`` with auth, one refresh on 401, and bounded retries."""

    def __init__(
        self,
        base_url: str,
        http: httpx.Client,
        auth: Auth,
        policy: RetryPolicy,
        timeout: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.auth = auth
        self.policy = policy
        self.timeout = timeout
        self.requests = 0  # every request sent, retries included (benchmarks, tests)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        authenticate: bool = True,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One logical request; the last response is returned whatever its status.

        ``idempotent=False`` (a create without ``If-None-Exist``) retries only what certainly
        did not land: 429 and a refused connection. A timeout or 5xx may hide a created
        resource, so it is raised as FhirTransient for the ledger to look up before retrying.
        """
        url = self.url(path)
        content = None if json_body is None else json.dumps(json_body).encode()

        def attempt() -> httpx.Response:
            extra = {"Accept": FHIR_JSON}
            if content is not None:
                extra["Content-Type"] = FHIR_JSON
            if authenticate:
                extra.update(self.auth.headers())
            extra.update(headers or {})
            self.requests += 1
            try:
                response = self.http.request(
                    method, url, params=params, content=content, headers=extra, timeout=self.timeout
                )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                raise
            except httpx.TransportError as exc:
                if idempotent:
                    raise
                raise _Ambiguous(f"{type(exc).__name__}: the outcome is unknown") from None
            if not idempotent and classify(response.status_code) == Action.RETRY:
                raise _Ambiguous(f"{response.status_code}: the outcome is unknown")
            return response

        try:
            response = send_with_retries(attempt, self.policy)
            if response.status_code == 401 and authenticate and self.auth.can_refresh:
                log.info("FHIR server answered 401; refreshing the access token once")
                self.auth.invalidate()
                response = send_with_retries(attempt, self.policy)
        except (RetriableError, _Ambiguous) as exc:
            raise FhirTransient(f"{method} {_path(url)}: {exc}") from None
        return response

    def get_json(
        self, path: str, params: list[tuple[str, str]] | Mapping[str, str] | None = None
    ) -> tuple[dict[str, Any], httpx.Response]:
        """GET a resource or Bundle; FhirError unless it is a 2xx JSON object."""
        response = self.send("GET", path, params=params)
        if response.status_code >= 300:
            raise error_for(response)
        return json_body(response), response

    def post_form(self, url: str, form: dict[str, str]) -> httpx.Response:
        """A form POST (the OAuth token endpoint): retried, never authenticated."""
        return self.send_raw("POST", url, data=form)

    def send_raw(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        def attempt() -> httpx.Response:
            self.requests += 1
            return self.http.request(method, url, timeout=self.timeout, **kwargs)

        try:
            return send_with_retries(attempt, self.policy)
        except RetriableError as exc:
            raise FhirTransient(f"{method} {_path(url)}: {exc}") from None


def _path(url: str) -> str:
    """The URL without its query string: search parameters can carry identifiers."""
    return url.split("?", 1)[0]


def etag_version(response: httpx.Response, resource: Mapping[str, Any]) -> str | None:
    """The version to put in ``If-Match``: the ETag's, else ``meta.versionId``."""
    etag = response.headers.get("ETag", "")
    if etag:
        return etag.removeprefix("W/").strip('"') or None
    meta = resource.get("meta")
    return meta.get("versionId") if isinstance(meta, Mapping) else None
