"""Errors as data: OperationOutcome as one line, HTML named, status classified once."""

from __future__ import annotations

import httpx
import pytest

from bridge.errors import FatalError, RetriableError
from connectors.fhir_r4.client import (
    FhirRejected,
    FhirTransient,
    error_for,
    etag_version,
    json_body,
    outcome_message,
)

REQUEST = httpx.Request("GET", "https://ehr.example.org/fhir/Task?patient=123")


def response(status: int, **kw) -> httpx.Response:
    return httpx.Response(status, request=REQUEST, **kw)


def test_outcome_message_reads_every_issue() -> None:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "bad date",
                "expression": ["Task.authoredOn"],
            },
            {"severity": "warning", "code": "informational", "details": {"text": "ignored _foo"}},
        ],
    }
    assert outcome_message(body) == (
        "error/invalid: bad date (at Task.authoredOn); warning/informational: ignored _foo"
    )
    assert outcome_message({"resourceType": "Patient"}) is None


@pytest.mark.parametrize(
    ("status", "kind", "family"),
    [
        (400, FhirRejected, FatalError),
        (404, FhirRejected, FatalError),
        (422, FhirRejected, FatalError),
        (401, FhirTransient, RetriableError),
        (403, FhirTransient, RetriableError),
        (429, FhirTransient, RetriableError),
        (500, FhirTransient, RetriableError),
        (503, FhirTransient, RetriableError),
    ],
)
def test_status_classification(status, kind, family) -> None:
    error = error_for(response(status, json={"resourceType": "OperationOutcome", "issue": []}))
    assert isinstance(error, kind) and isinstance(error, family)
    assert error.status == status
    assert "?patient" not in str(error)  # query strings (identifiers) stay out of messages


def test_retry_after_is_kept_on_the_error() -> None:
    error = error_for(response(429, headers={"Retry-After": "12"}))
    assert isinstance(error, FhirTransient) and error.retry_after == 12.0


def test_html_is_named_not_parsed() -> None:
    page = response(
        200,
        content=b"<html><body>Sign in</body></html>",
        headers={"Content-Type": "text/html; charset=utf-8"},
    )
    with pytest.raises(FhirRejected, match="answered HTML .*instead of FHIR JSON"):
        json_body(page)
    sneaky = response(
        200, content=b"  <!DOCTYPE html><html/>", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(FhirRejected, match="answered HTML"):
        json_body(sneaky)


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(FhirRejected, match="not JSON"):
        json_body(response(200, content=b"{oops", headers={"Content-Type": "application/json"}))
    with pytest.raises(FhirRejected, match="expected a JSON object"):
        json_body(response(200, json=[1, 2]))


def test_html_error_page_is_described() -> None:
    error = error_for(
        response(502, content=b"<html>Bad gateway</html>", headers={"Content-Type": "text/html"})
    )
    assert str(error) == "GET https://ehr.example.org/fhir/Task: 502 HTML error page"


def test_etag_version() -> None:
    assert etag_version(response(200, headers={"ETag": 'W/"7"'}), {}) == "7"
    assert etag_version(response(200), {"meta": {"versionId": "3"}}) == "3"
    assert etag_version(response(200), {}) is None
