"""The SendGrid email channel against a stand-in SendGrid (respx, strict) and SendGrid's OpenAPI."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bridge.channels.base import OutboundMessage, PermanentSendError, SendResult
from bridge.channels.sendgrid_email import SendGridEmailChannel
from bridge.config import SendGridSettings
from bridge.errors import AmbiguousError, RetriableError
from bridge.http import RetryPolicy

API_KEY = "SG.test-key.not-a-real-secret"
FROM_EMAIL = "reminders@riverside.example.org"
FROM_NAME = "Riverside Counseling"
TO = "alex.client@example.com"
SEND_URL = "https://api.sendgrid.com/v3/mail/send"
MESSAGE_ID = "W3Ef1x9QRu6pWl3h0oVqzA"
SUBJECT = "A reminder from Riverside Counseling"
TEXT = "You have a practice exercise this week. Open your link: https://bridge.example.org/c/tok\n"
HTML = '<p>You have a practice exercise this week. <a href="https://bridge.example.org/c/tok">Open</a></p>'

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "vendor-specs" / "tsg_mail_v3.json"
JSON = "application/json"


# -- helpers -------------------------------------------------------------------------


class SleepRecorder:
    """A RetryPolicy sleep that records the delays and never sleeps."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def settings(**overrides: Any) -> SendGridSettings:
    values: dict[str, Any] = {"api_key": API_KEY, "from_email": FROM_EMAIL, "from_name": FROM_NAME}
    values.update(overrides)
    return SendGridSettings(**values)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_channel(sleeps):
    made: list[tuple[SendGridEmailChannel, httpx.Client]] = []

    def make(**overrides: Any) -> SendGridEmailChannel:
        client = httpx.Client()
        channel = SendGridEmailChannel(
            settings(**overrides), http=client, policy=RetryPolicy(sleep=sleeps)
        )
        made.append((channel, client))
        return channel

    yield make
    for channel, client in made:
        channel.close()
        client.close()


@pytest.fixture
def sendgrid():
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as mock:
        yield mock


def accepted(message_id: str | None = MESSAGE_ID) -> httpx.Response:
    headers = {"X-Message-Id": message_id} if message_id else {}
    return httpx.Response(202, headers=headers, content=b"")


def sendgrid_error(status: int, *errors: tuple[str, str | None]) -> httpx.Response:
    return httpx.Response(
        status, json={"errors": [{"message": m, "field": f, "help": None} for m, f in errors]}
    )


def outbound(reminder_id: int = 42, **overrides: Any) -> OutboundMessage:
    values: dict[str, Any] = {"to": TO, "body": TEXT, "subject": SUBJECT, "html": HTML}
    values.update(overrides)
    return OutboundMessage(reminder_id=reminder_id, **values)


def body_of(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content.decode("utf-8"))


# -- the vendor's schema -------------------------------------------------------------


@cache
def vendor_spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (siblings of a $ref, such as a description, are kept)."""
    while "$ref" in schema:
        target: Any = vendor_spec()
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
    return schema


@cache
def send_mail_schema() -> dict[str, Any]:
    for item in vendor_spec()["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") == "SendMail":
                body = resolve(operation["requestBody"])
                return resolve(body["content"][JSON]["schema"])
    raise AssertionError("SendMail operation not found in the SendGrid spec")


TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def schema_problems(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """What in ``value`` the schema forbids: types, required and undeclared keys, sizes."""
    schema = resolve(schema)
    expected = schema.get("type")
    if expected:
        ok = isinstance(value, TYPES[expected])
        if expected in ("integer", "number") and isinstance(value, bool):
            ok = False
        if not ok:
            return [f"{path}: expected {expected}, got {type(value).__name__}"]
    problems: list[str] = []
    if isinstance(value, dict):
        problems += _object_problems(value, schema, path)
    elif isinstance(value, list):
        problems += _array_problems(value, schema, path)
    elif isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']}")
        if schema.get("format") == "email" and "@" not in value:
            problems.append(f"{path}: not an email address")
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{path}: {value!r} not one of {schema['enum']}")
    return problems


def _object_problems(value: dict, schema: dict[str, Any], path: str) -> list[str]:
    required = schema.get("required", [])
    problems = [f"{path}: missing required {k!r}" for k in required if k not in value]
    declared = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in declared:
            problems += schema_problems(item, declared[key], f"{path}.{key}")
        elif isinstance(extra, dict):
            problems += schema_problems(item, extra, f"{path}.{key}")
        elif declared or extra is False:
            problems.append(f"{path}: undeclared key {key!r}")
    return problems


def _array_problems(value: list, schema: dict[str, Any], path: str) -> list[str]:
    problems = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        problems.append(f"{path}: more than {schema['maxItems']} items")
    if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) < len(
        value
    ):
        problems.append(f"{path}: items are not unique")
    for i, item in enumerate(value):
        problems += schema_problems(item, schema.get("items", {}), f"{path}[{i}]")
    return problems


def assert_valid_send_mail(request: httpx.Request) -> None:
    """The captured request is a SendMail SendGrid's published OpenAPI would accept."""
    if not SPEC_PATH.is_file():
        pytest.skip(f"SendGrid OpenAPI spec not found at {SPEC_PATH}")
    assert request.method == "POST"
    assert request.headers["content-type"].split(";")[0].strip() == JSON
    problems = schema_problems(body_of(request), send_mail_schema())
    assert not problems, "SendMail body does not match the vendor schema:\n" + "\n".join(problems)
    # What the schema cannot say (README of the vendor specs): subject and content are needed
    # unless a template supplies them.
    body = body_of(request)
    assert "template_id" in body or ("subject" in body and body.get("content"))


def test_the_schema_checker_is_not_vacuous():
    if not SPEC_PATH.is_file():
        pytest.skip(f"SendGrid OpenAPI spec not found at {SPEC_PATH}")
    bad = {
        "personalizations": [{"to": [{"name": "no address"}], "reminder": 1}],
        "from": {"email": 7},
        "categories": ["a", "a"],
        "tracking_settings": {"click_tracking": {"enable": "no"}},
    }
    problems = "\n".join(schema_problems(bad, send_mail_schema()))
    assert "$.personalizations[0].to[0]: missing required 'email'" in problems
    assert "$.personalizations[0]: undeclared key 'reminder'" in problems
    assert "$.from.email: expected string" in problems
    assert "$.categories: items are not unique" in problems
    assert "$.tracking_settings.click_tracking.enable: expected boolean" in problems
    assert schema_problems({"from": {"email": FROM_EMAIL}}, send_mail_schema()) == [
        "$: missing required 'personalizations'"
    ]


# -- success -------------------------------------------------------------------------


def test_accepted_message_returns_its_id_and_sends_a_valid_request(sendgrid, make_channel, sleeps):
    route = sendgrid.post(SEND_URL).mock(return_value=accepted())

    result = make_channel().send(outbound(42))

    assert result == SendResult(provider_message_id=MESSAGE_ID)
    assert route.call_count == 1
    request = route.calls.last.request
    assert str(request.url) == SEND_URL
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = body_of(request)
    assert body["personalizations"] == [
        {"to": [{"email": TO}], "custom_args": {"reminder_id": "42"}}
    ]
    assert body["from"] == {"email": FROM_EMAIL, "name": FROM_NAME}
    assert body["subject"] == SUBJECT
    assert body["content"] == [
        {"type": "text/plain", "value": TEXT},
        {"type": "text/html", "value": HTML},
    ]
    assert body["categories"] == ["homework-reminder"]
    assert body["tracking_settings"] == {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
    }
    assert "custom_args" not in body  # the spec types a message-level one as a string
    assert_valid_send_mail(request)
    assert sleeps.delays == []


def test_the_recipient_appears_only_as_the_recipient(sendgrid, make_channel):
    route = sendgrid.post(SEND_URL).mock(return_value=accepted())

    make_channel().send(outbound(42))

    body = body_of(route.calls.last.request)
    assert json.dumps(body).count(TO) == 1
    personalization = body["personalizations"][0]
    assert "name" not in personalization["to"][0]  # a client's name never travels to SendGrid
    assert set(personalization["custom_args"]) == {"reminder_id"}
    assert body["categories"] == ["homework-reminder"]


def test_missing_message_id_header_falls_back_to_the_reminder(sendgrid, make_channel):
    sendgrid.post(SEND_URL).mock(return_value=accepted(message_id=None))

    result = make_channel().send(outbound(42))

    assert result.provider_message_id == "sg-42"


def test_text_only_message_and_no_sender_name(sendgrid, make_channel):
    route = sendgrid.post(SEND_URL).mock(return_value=accepted())

    make_channel(from_name=None).send(outbound(7, html=None))

    body = body_of(route.calls.last.request)
    assert body["content"] == [{"type": "text/plain", "value": TEXT}]
    assert body["from"] == {"email": FROM_EMAIL}
    assert body["personalizations"][0]["custom_args"] == {"reminder_id": "7"}
    assert_valid_send_mail(route.calls.last.request)


def test_another_api_base(sendgrid, sleeps):
    route = sendgrid.post("https://api.eu.sendgrid.com/v3/mail/send").mock(return_value=accepted())
    with httpx.Client() as client:
        channel = SendGridEmailChannel(
            settings(),
            http=client,
            policy=RetryPolicy(sleep=sleeps),
            api_base="https://api.eu.sendgrid.com/",
        )
        assert channel.send(outbound()).provider_message_id == MESSAGE_ID
    assert route.call_count == 1


# -- transient failures --------------------------------------------------------------


def test_rate_limited_waits_retry_after_then_succeeds(sendgrid, make_channel, sleeps):
    route = sendgrid.post(SEND_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"errors": [{"message": "x"}]}),
            accepted(),
        ]
    )

    result = make_channel().send(outbound())

    assert result.provider_message_id == MESSAGE_ID
    assert route.call_count == 2
    assert sleeps.delays == [7.0]
    for call in route.calls:
        assert_valid_send_mail(call.request)
    assert route.calls[0].request.content == route.calls[1].request.content


def test_unavailable_gives_up_after_three_attempts(sendgrid, make_channel, sleeps):
    route = sendgrid.post(SEND_URL).mock(return_value=httpx.Response(503, text="busy"))

    with pytest.raises(RetriableError) as raised:
        make_channel().send(outbound())

    assert route.call_count == 3
    assert len(sleeps.delays) == 2  # between attempts only, never after the last
    assert "sendgrid 503" in str(raised.value)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_an_error_after_sendgrid_may_have_acted_is_never_repeated(sendgrid, make_channel, status):
    """No idempotency key at SendGrid: a 500 may still have queued the mail."""
    route = sendgrid.post(SEND_URL).mock(return_value=httpx.Response(status, text="oops"))

    with pytest.raises(AmbiguousError):
        make_channel().send(outbound())

    assert route.call_count == 1


def test_rate_limited_to_the_end_says_when_to_come_back(sendgrid, make_channel, sleeps):
    route = sendgrid.post(SEND_URL).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "20"})
    )

    with pytest.raises(RetriableError) as raised:
        make_channel().send(outbound())

    assert route.call_count == 3
    assert sleeps.delays == [20.0, 20.0]
    assert raised.value.retry_after == 20.0


def test_connect_timeout_then_success(sendgrid, make_channel, sleeps):
    route = sendgrid.post(SEND_URL).mock(
        side_effect=[httpx.ConnectTimeout("connect timed out"), accepted()]
    )

    assert make_channel().send(outbound()).provider_message_id == MESSAGE_ID
    assert route.call_count == 2
    assert len(sleeps.delays) == 1


def test_read_timeout_after_sending_is_ambiguous_not_repeated(sendgrid, make_channel):
    route = sendgrid.post(SEND_URL).mock(side_effect=httpx.ReadTimeout("read timed out"))

    with pytest.raises(AmbiguousError):
        make_channel().send(outbound())

    assert route.call_count == 1


def test_timeouts_on_every_attempt_are_retriable(sendgrid, make_channel):
    route = sendgrid.post(SEND_URL).mock(side_effect=httpx.ConnectTimeout("connect timed out"))

    with pytest.raises(RetriableError):
        make_channel().send(outbound())

    assert route.call_count == 3


# -- permanent failures --------------------------------------------------------------


def test_bad_request_is_permanent_with_a_readable_message(sendgrid, make_channel, sleeps):
    route = sendgrid.post(SEND_URL).mock(
        return_value=sendgrid_error(
            400,
            ("The subject is required. You can get around this requirement ...", "subject"),
            (f"Recipient {TO} is on a list that cannot receive this message", None),
        )
    )

    with pytest.raises(PermanentSendError) as raised:
        make_channel().send(outbound())

    text = str(raised.value)
    assert text.startswith("sendgrid 400: subject: The subject is required.")
    assert "Recipient <address> is on a list" in text
    assert TO not in text and "@" not in text
    assert raised.value.code == 400
    assert raised.value.consequence is None
    assert route.call_count == 1
    assert sleeps.delays == []


def test_refused_recipient_address_is_remembered(sendgrid, make_channel):
    sendgrid.post(SEND_URL).mock(
        return_value=sendgrid_error(
            400, ("Does not contain a valid address.", "personalizations.0.to.0.email")
        )
    )

    with pytest.raises(PermanentSendError) as raised:
        make_channel().send(outbound())

    assert raised.value.consequence == "unusable_address"
    assert "personalizations.0.to.0.email: Does not contain a valid address." in str(raised.value)


def test_bad_request_without_a_json_body(sendgrid, make_channel):
    sendgrid.post(SEND_URL).mock(return_value=httpx.Response(400, text="<html>bad</html>"))

    with pytest.raises(PermanentSendError) as raised:
        make_channel().send(outbound())

    assert str(raised.value) == "sendgrid 400"


@pytest.mark.parametrize("status", [401, 403])
def test_bad_credentials_are_permanent_and_not_retried(sendgrid, make_channel, sleeps, status):
    route = sendgrid.post(SEND_URL).mock(
        return_value=sendgrid_error(
            status, ("The provided authorization grant is invalid, expired, or revoked", None)
        )
    )

    with pytest.raises(PermanentSendError) as raised:
        make_channel().send(outbound())

    assert route.call_count == 1
    assert sleeps.delays == []
    assert raised.value.code == status
    assert "configuration problem" in str(raised.value)
    assert API_KEY not in str(raised.value)


def test_too_large_is_permanent(sendgrid, make_channel, sleeps):
    route = sendgrid.post(SEND_URL).mock(return_value=httpx.Response(413, text="too big"))

    with pytest.raises(PermanentSendError) as raised:
        make_channel().send(outbound())

    assert raised.value.code == 413
    assert route.call_count == 1
    assert sleeps.delays == []


def test_message_without_subject_never_reaches_sendgrid(sendgrid, make_channel):
    with pytest.raises(PermanentSendError, match="subject"):
        make_channel().send(outbound(subject=None))


# -- lifecycle -----------------------------------------------------------------------


def test_close_closes_only_a_client_it_created():
    own = SendGridEmailChannel(settings())
    own.close()
    assert own.http.is_closed

    with httpx.Client() as client:
        lent = SendGridEmailChannel(settings(), http=client)
        lent.close()
        assert not client.is_closed
