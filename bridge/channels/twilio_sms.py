"""SMS through Twilio's Messages API, using the twilio package over httpx.

The twilio package builds and signs the request; httpx carries it, so one timeout and
retry policy covers every call and respx can stand in for Twilio in tests.
"""

from __future__ import annotations

import logging

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from bridge.channels.base import OutboundMessage, PermanentSendError, SendResult
from bridge.config import TwilioSettings
from bridge.errors import AmbiguousError, RetriableError
from bridge.http import AMBIGUOUS_STATUS, Action, RetryPolicy, classify, send_with_retries

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"

# Twilio error codes the bridge must remember beyond this one message.
OPTED_OUT = {21610}
UNUSABLE_NUMBER = {21211, 21214, 21612, 21614, 30005, 30006}
RETRY_LATER = {30003, 20429}


class HttpxTwilioClient(HttpClient):
    """twilio's HttpClient contract implemented with httpx and the bridge's retry policy."""

    def __init__(self, client: httpx.Client, policy: RetryPolicy, timeout: float = 10,
                 base_url: str = TWILIO_API) -> None:  # fmt: skip
        super().__init__(logger=log, is_async=False, timeout=timeout)
        self.client = client
        self.policy = policy
        self.base_url = base_url.rstrip("/")

    def request(
        self,
        method,
        uri,
        params=None,
        data=None,
        headers=None,
        auth=None,
        timeout=None,
        allow_redirects=False,
    ) -> Response:
        headers = dict(headers or {})
        if uri.startswith(TWILIO_API) and self.base_url != TWILIO_API:
            uri = self.base_url + uri[len(TWILIO_API) :]  # a regional edge or a local stand-in
        json_body = headers.get("Content-Type") in ("application/json", "application/scim+json")

        def call() -> httpx.Response:
            return self.client.request(
                method.upper(),
                uri,
                params=params,
                data=None if json_body else data,
                json=data if json_body else None,
                headers=headers,
                auth=auth,
                timeout=timeout or self.timeout,
                follow_redirects=allow_redirects,
            )

        idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE")
        response = send_with_retries(call, self.policy, idempotent=idempotent)
        return Response(response.status_code, response.text, dict(response.headers))


class TwilioSmsChannel:
    name = "sms"

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        status_callback_base: str | None,
        http: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.status_callback_base = status_callback_base
        self.http = http or httpx.Client(timeout=settings.timeout_seconds)
        transport = HttpxTwilioClient(self.http, policy or RetryPolicy(), settings.timeout_seconds,
                                      settings.api_base_url)  # fmt: skip
        self.client = Client(
            settings.account_sid, settings.auth_token.get_secret_value(), http_client=transport
        )

    def status_callback_url(self, reminder_id: int) -> str | None:
        if not self.status_callback_base:
            return None
        return f"{self.status_callback_base}/webhooks/twilio/status?reminder={reminder_id}"

    def send(self, message: OutboundMessage) -> SendResult:
        kwargs: dict = {"to": message.to, "body": message.body}
        if self.settings.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.settings.messaging_service_sid
        else:
            kwargs["from_"] = self.settings.from_number
        callback = self.status_callback_url(message.reminder_id)
        if callback:
            kwargs["status_callback"] = callback
        try:
            created = self.client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise _translate(exc) from None
        except (RetriableError, AmbiguousError):
            raise
        except TwilioException as exc:  # other error formats: treat as transient, bounded
            raise RetriableError(f"twilio error: {type(exc).__name__}") from None
        return SendResult(provider_message_id=created.sid)

    def close(self) -> None:
        self.http.close()


def _translate(exc: TwilioRestException) -> Exception:
    code = exc.code if isinstance(exc.code, int) else None
    summary = f"twilio {exc.status}" + (f" error {code}" if code else "")
    if code in OPTED_OUT:
        return PermanentSendError(
            f"{summary}: recipient opted out", code=code, consequence="opted_out"
        )
    if code in UNUSABLE_NUMBER:
        return PermanentSendError(
            f"{summary}: number cannot receive SMS", code=code, consequence="unusable_number"
        )
    if code in RETRY_LATER:
        return RetriableError(summary)
    if exc.status in AMBIGUOUS_STATUS:
        return AmbiguousError(f"{summary}: Twilio may have accepted the message")
    action = classify(exc.status)
    if action in (Action.RETRY, Action.RATE_LIMITED):
        return RetriableError(summary)
    return PermanentSendError(summary, code=code)
