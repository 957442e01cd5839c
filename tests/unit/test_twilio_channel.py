"""The Twilio SMS channel against a stand-in Twilio (respx, strict) and Twilio's own OpenAPI."""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from bridge.channels.base import OutboundMessage, PermanentSendError, SendResult
from bridge.channels.twilio_sms import TwilioSmsChannel
from bridge.config import TwilioSettings
from bridge.errors import AmbiguousError, RetriableError
from bridge.http import RetryPolicy

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token"
FROM = "+13125550199"
TO = "+13125550101"
MESSAGING_SERVICE_SID = "MG" + "fedcba9876543210" * 2
MESSAGE_SID = "SM" + "a1b2c3d4e5f60718" * 2
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
CALLBACK_BASE = "https://bridge.example.org"
BODY = "Riverside Counseling: a friendly reminder about your practice exercise."

SPEC_PATH = (
    Path(__file__).resolve().parents[3] / "shared" / "vendor-specs" / "twilio_api_v2010.json"
)
FORM = "application/x-www-form-urlencoded"


# -- helpers -------------------------------------------------------------------------


class SleepRecorder:
    """A RetryPolicy sleep that records the delays and never sleeps."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def settings(**overrides) -> TwilioSettings:
    values = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": FROM}
    values.update(overrides)
    return TwilioSettings(**values)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_channel(sleeps):
    made: list[TwilioSmsChannel] = []

    def make(status_callback_base: str | None = CALLBACK_BASE, **overrides) -> TwilioSmsChannel:
        channel = TwilioSmsChannel(
            settings(**overrides),
            status_callback_base=status_callback_base,
            policy=RetryPolicy(sleep=sleeps),
        )
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


@pytest.fixture
def twilio():
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as mock:
        yield mock


def message_json(sid: str = MESSAGE_SID, **overrides) -> dict:
    """A Message resource as Twilio answers a create (201, status queued)."""
    body = {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": BODY,
        "date_created": "Tue, 03 Mar 2026 15:00:00 +0000",
        "date_sent": None,
        "date_updated": "Tue, 03 Mar 2026 15:00:00 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": FROM,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"
        },
        "to": TO,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
    }
    body.update(overrides)
    return body


def created(**overrides) -> httpx.Response:
    return httpx.Response(201, json=message_json(**overrides))


def twilio_error(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def outbound(reminder_id: int = 42) -> OutboundMessage:
    return OutboundMessage(reminder_id=reminder_id, to=TO, body=BODY)


def form_of(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode("utf-8"), keep_blank_values=True, strict_parsing=True)


@cache
def create_message_schema() -> dict:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    for item in spec["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") == "CreateMessage":
                return operation["requestBody"]["content"][FORM]["schema"]
    raise AssertionError("CreateMessage operation not found in the Twilio spec")


def assert_valid_create_message(request: httpx.Request) -> None:
    """The captured request is a CreateMessage Twilio's published OpenAPI would accept."""
    if not SPEC_PATH.is_file():
        pytest.skip(f"Twilio OpenAPI spec not found at {SPEC_PATH}")
    schema = create_message_schema()
    declared = set(schema["properties"])
    form = form_of(request)
    assert request.method == "POST"
    assert request.headers["content-type"].split(";")[0].strip() == FORM
    undeclared = set(form) - declared
    assert not undeclared, f"form keys not in CreateMessageRequest: {sorted(undeclared)}"
    missing = set(schema.get("required", [])) - set(form)
    assert not missing, f"required CreateMessageRequest keys missing: {sorted(missing)}"
    # Conditions the schema states only in its vendor extension (x-twilio.conditional).
    assert ("From" in form) != ("MessagingServiceSid" in form)
    assert {"Body", "MediaUrl", "ContentSid"} & set(form)
    for key, values in form.items():
        prop = schema["properties"][key]
        if prop.get("type") != "array":
            assert len(values) == 1, f"{key} sent {len(values)} times"
        if prop.get("format") == "uri":
            assert all(v.startswith("https://") for v in values), key


def basic_auth(request: httpx.Request) -> tuple[str, str]:
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    return user, password


# -- success -------------------------------------------------------------------------


def test_created_message_returns_its_sid_and_sends_a_valid_request(twilio, make_channel, sleeps):
    route = twilio.post(MESSAGES_URL).mock(return_value=created())

    result = make_channel().send(outbound(42))

    assert result == SendResult(provider_message_id=MESSAGE_SID)
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == MESSAGES_URL
    assert request.headers["content-type"] == FORM
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert form_of(request) == {
        "To": [TO],
        "Body": [BODY],
        "From": [FROM],
        "StatusCallback": [f"{CALLBACK_BASE}/webhooks/twilio/status?reminder=42"],
    }
    assert_valid_create_message(request)
    assert sleeps.delays == []


def test_messaging_service_replaces_from(twilio, make_channel):
    route = twilio.post(MESSAGES_URL).mock(
        return_value=created(messaging_service_sid=MESSAGING_SERVICE_SID)
    )

    channel = make_channel(from_number=None, messaging_service_sid=MESSAGING_SERVICE_SID)
    result = channel.send(outbound(7))

    assert result.provider_message_id == MESSAGE_SID
    form = form_of(route.calls.last.request)
    assert "From" not in form
    assert form == {
        "To": [TO],
        "Body": [BODY],
        "MessagingServiceSid": [MESSAGING_SERVICE_SID],
        "StatusCallback": [f"{CALLBACK_BASE}/webhooks/twilio/status?reminder=7"],
    }
    assert_valid_create_message(route.calls.last.request)


def test_messaging_service_wins_when_both_are_configured(twilio, make_channel):
    route = twilio.post(MESSAGES_URL).mock(return_value=created())

    make_channel(messaging_service_sid=MESSAGING_SERVICE_SID).send(outbound())

    form = form_of(route.calls.last.request)
    assert form["MessagingServiceSid"] == [MESSAGING_SERVICE_SID]
    assert "From" not in form
    assert_valid_create_message(route.calls.last.request)


def test_no_status_callback_without_a_public_base(twilio, make_channel):
    route = twilio.post(MESSAGES_URL).mock(return_value=created())

    result = make_channel(status_callback_base=None).send(outbound())

    assert result.provider_message_id == MESSAGE_SID
    assert form_of(route.calls.last.request) == {"To": [TO], "Body": [BODY], "From": [FROM]}
    assert_valid_create_message(route.calls.last.request)


# -- transient failures --------------------------------------------------------------


def test_rate_limited_waits_retry_after_then_succeeds(twilio, make_channel, sleeps):
    route = twilio.post(MESSAGES_URL).mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"Retry-After": "7"},
                json={
                    "code": 20429,
                    "message": "Too Many Requests",
                    "more_info": "https://www.twilio.com/docs/errors/20429",
                    "status": 429,
                },
            ),
            created(),
        ]
    )

    result = make_channel().send(outbound())

    assert result.provider_message_id == MESSAGE_SID
    assert route.call_count == 2
    assert sleeps.delays == [7.0]
    for call in route.calls:
        assert_valid_create_message(call.request)
    # the retry is the same request
    assert route.calls[0].request.content == route.calls[1].request.content


def test_server_errors_give_up_after_three_attempts(twilio, make_channel, sleeps):
    route = twilio.post(MESSAGES_URL).mock(
        return_value=httpx.Response(503, text="Service Unavailable")
    )

    with pytest.raises(RetriableError):
        make_channel().send(outbound())

    assert route.call_count == 3
    assert len(sleeps.delays) == 2  # between attempts only, never after the last


def test_timeout_then_success(twilio, make_channel, sleeps):
    route = twilio.post(MESSAGES_URL).mock(
        side_effect=[httpx.ConnectTimeout("connect timed out"), created()]
    )

    result = make_channel().send(outbound())

    assert result.provider_message_id == MESSAGE_SID
    assert route.call_count == 2
    assert len(sleeps.delays) == 1


def test_timeouts_on_every_attempt_are_retriable(twilio, make_channel):
    route = twilio.post(MESSAGES_URL).mock(side_effect=httpx.ConnectTimeout("connect timed out"))

    with pytest.raises(RetriableError):
        make_channel().send(outbound())

    assert route.call_count == 3


def test_retry_later_code_is_retriable_without_resending_now(twilio, make_channel, sleeps):
    route = twilio.post(MESSAGES_URL).mock(
        return_value=twilio_error(400, 30003, "Unreachable destination handset")
    )

    with pytest.raises(RetriableError):
        make_channel().send(outbound())

    assert route.call_count == 1  # a 400 is not retried in-request; dispatch tries later
    assert sleeps.delays == []


# -- permanent failures --------------------------------------------------------------


def test_opted_out_recipient(twilio, make_channel, sleeps):
    route = twilio.post(MESSAGES_URL).mock(
        return_value=twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
    )

    with pytest.raises(PermanentSendError) as raised:
        make_channel().send(outbound())

    assert raised.value.code == 21610
    assert raised.value.consequence == "opted_out"
    assert route.call_count == 1
    assert sleeps.delays == []


def test_invalid_number(twilio, make_channel):
    route = twilio.post(MESSAGES_URL).mock(
        return_value=twilio_error(400, 21211, "The 'To' number is not a valid phone number.")
    )

    with pytest.raises(PermanentSendError) as raised:
        make_channel().send(outbound())

    assert raised.value.code == 21211
    assert raised.value.consequence == "unusable_number"
    assert route.call_count == 1


def test_other_client_errors_are_permanent_without_consequence(twilio, make_channel):
    route = twilio.post(MESSAGES_URL).mock(
        return_value=twilio_error(400, 21602, "Message body is required.")
    )

    with pytest.raises(PermanentSendError) as raised:
        make_channel().send(outbound())

    assert raised.value.code == 21602
    assert raised.value.consequence is None
    assert route.call_count == 1


def test_bad_credentials_are_permanent_and_not_retried(twilio, make_channel, sleeps):
    route = twilio.post(MESSAGES_URL).mock(return_value=twilio_error(401, 20003, "Authenticate"))

    with pytest.raises(PermanentSendError) as raised:
        make_channel().send(outbound())

    assert raised.value.consequence is None
    assert route.call_count == 1
    assert sleeps.delays == []
    # the auth token never leaks into the error text
    assert AUTH_TOKEN not in str(raised.value)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_an_error_after_twilio_may_have_acted_is_never_repeated(twilio, make_channel, status):
    route = twilio.post(MESSAGES_URL).mock(return_value=httpx.Response(status, text="oops"))

    with pytest.raises(AmbiguousError):
        make_channel().send(outbound())

    assert route.call_count == 1


def test_read_timeout_after_sending_is_ambiguous(twilio, make_channel):
    route = twilio.post(MESSAGES_URL).mock(side_effect=httpx.ReadTimeout("read timed out"))

    with pytest.raises(AmbiguousError):
        make_channel().send(outbound())

    assert route.call_count == 1


# -- concurrency -----------------------------------------------------------------------


def test_concurrent_sends_each_borrow_a_client_and_reuse_them(twilio):
    """No client is shared by two sends at once; the stack never outgrows the senders."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    senders = 6
    barrier = threading.Barrier(senders)
    in_use: set[int] = set()
    overlaps: list[int] = []
    lock = threading.Lock()

    channel = TwilioSmsChannel(settings(), status_callback_base=CALLBACK_BASE)
    real_client = channel.client

    from contextlib import contextmanager

    @contextmanager
    def watched():
        with real_client() as client:
            with lock:
                if id(client) in in_use:
                    overlaps.append(id(client))
                in_use.add(id(client))
            try:
                yield client
            finally:
                with lock:
                    in_use.discard(id(client))

    channel.client = watched  # type: ignore[method-assign]

    def answer(request):
        if not barrier.broken:
            barrier.wait(timeout=5)  # the first round: all six senders hold a client at once
        return created()

    twilio.post(MESSAGES_URL).mock(side_effect=answer)
    with ThreadPoolExecutor(senders) as pool:
        first = list(pool.map(lambda i: channel.send(outbound(i)), range(senders)))
        barrier.abort()  # later rounds need not meet
        later = list(pool.map(lambda i: channel.send(outbound(i)), range(senders * 5)))
    assert all(r.provider_message_id == MESSAGE_SID for r in first + later)
    assert overlaps == []
    assert len(channel.clients) == senders  # six met at once; no more were ever made
    assert len(channel.idle) == senders
    made = list(channel.clients)
    channel.close()
    assert all(c.closed for c in made) and channel.clients == [] and channel.idle == []


def test_close_closes_every_client_it_made(twilio):
    twilio.post(MESSAGES_URL).mock(return_value=created())
    channel = TwilioSmsChannel(settings(), status_callback_base=None)
    channel.send(outbound())
    made = list(channel.clients)
    channel.close()
    assert made and all(client.closed for client in made)


def test_an_accepted_message_without_a_readable_sid_counts_as_sent(twilio, make_channel):
    """2xx means Twilio took it: never resend; the status callback names the message later."""
    route = twilio.post(MESSAGES_URL).mock(return_value=httpx.Response(201, text="<html>"))

    result = make_channel().send(outbound())

    assert result == SendResult(provider_message_id=None)
    assert route.call_count == 1


def test_a_client_given_by_the_caller_is_used_for_every_send(twilio):
    route = twilio.post(MESSAGES_URL).mock(return_value=created())
    given = httpx.Client()
    channel = TwilioSmsChannel(settings(), status_callback_base=CALLBACK_BASE, http=given)

    assert channel.send(outbound(3)).provider_message_id == MESSAGE_SID

    assert channel.clients == []  # none of its own
    assert_valid_create_message(route.calls.last.request)
    channel.close()
    assert given.is_closed
