"""SMS through Twilio's Messages API: one form POST over httpx, Twilio's error codes mapped.

A reminder is one documented request (``POST /2010-04-01/Accounts/{sid}/Messages.json``
with To, From or MessagingServiceSid, Body and StatusCallback), so the channel builds it
directly: Twilio's resource layer cost more CPU per message than the HTTP round trip
(``bench/bench_dispatch.py``), and that CPU is what bounds a replica's send rate. The
twilio package still supplies the error type and validates inbound webhooks; tests check
every request against Twilio's published OpenAPI file.
"""

from __future__ import annotations

import base64
import logging
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol
from urllib.parse import urlencode

import httpx
from twilio.base.exceptions import TwilioRestException

from bridge import __version__
from bridge.channels.base import OutboundMessage, PermanentSendError, SendResult
from bridge.channels.twilio_errors import OPTED_OUT, RETRY_LATER, UNUSABLE_NUMBER
from bridge.config import TwilioSettings
from bridge.errors import AmbiguousError, RetriableError
from bridge.http import AMBIGUOUS_STATUS, Action, RetryPolicy, classify, send_with_retries

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"


class Poster(Protocol):
    def post(self, url: str, content: bytes, headers: dict[str, str]) -> httpx.Response: ...


class OwnTransport:
    """One sender's HTTP transport: one keep-alive connection, one thread at a time.

    The request goes straight to httpx's transport: a client's cookie jar, redirect and
    auth machinery cost a third of the CPU of a send and do nothing for this one POST.
    """

    def __init__(self, timeout: float) -> None:
        self.transport = httpx.HTTPTransport()
        self.timeout = httpx.Timeout(timeout).as_dict()
        self.closed = False

    def post(self, url: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        request = httpx.Request("POST", url, content=content, headers=headers,
                                extensions={"timeout": self.timeout})  # fmt: skip
        response = self.transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return response

    def close(self) -> None:
        self.transport.close()
        self.closed = True


class SharedClient:
    """A caller's own httpx client (tests and the benchmark's comparison use one)."""

    def __init__(self, client: httpx.Client, timeout: float) -> None:
        self.client, self.timeout = client, timeout

    def post(self, url: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.client.post(url, content=content, headers=headers, timeout=self.timeout)


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
        self.shared_http = http
        self.clients: list[OwnTransport] = []
        self.idle: list[OwnTransport] = []
        self.clients_lock = threading.Lock()
        self.policy = policy or RetryPolicy()
        base = (settings.api_base_url or TWILIO_API).rstrip("/")
        self.url = f"{base}/2010-04-01/Accounts/{settings.account_sid}/Messages.json"
        secret = f"{settings.account_sid}:{settings.auth_token.get_secret_value()}"
        self.headers = {
            "Authorization": "Basic " + base64.b64encode(secret.encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": f"homework-bridge/{__version__} (Python/{platform.python_version()})",
        }

    @contextmanager
    def client(self) -> Iterator[Poster]:
        """A connection of its own for this send.

        One pooled client shared by many sender threads spends its time on the pool's lock
        and scanning its connections, more so the more threads there are (measured in
        ``bench/bench_dispatch.py``). Each send instead borrows a whole transport, with its
        one warm connection, from a stack that grows to the number of concurrent senders.
        """
        if self.shared_http is not None:
            yield SharedClient(self.shared_http, self.settings.timeout_seconds)
            return
        with self.clients_lock:
            client = self.idle.pop() if self.idle else None
        if client is None:
            client = OwnTransport(self.settings.timeout_seconds)
            with self.clients_lock:
                self.clients.append(client)
        try:
            yield client
        finally:
            with self.clients_lock:
                self.idle.append(client)

    def status_callback_url(self, reminder_id: int) -> str | None:
        if not self.status_callback_base:
            return None
        return f"{self.status_callback_base}/webhooks/twilio/status?reminder={reminder_id}"

    def form(self, message: OutboundMessage) -> dict[str, str]:
        """The CreateMessage form; a Messaging Service, when configured, replaces From."""
        form = {"To": message.to, "Body": message.body}
        if self.settings.messaging_service_sid:
            form["MessagingServiceSid"] = self.settings.messaging_service_sid
        else:
            assert self.settings.from_number  # the settings model requires one of the two
            form["From"] = self.settings.from_number
        callback = self.status_callback_url(message.reminder_id)
        if callback:
            form["StatusCallback"] = callback
        return form

    def send(self, message: OutboundMessage) -> SendResult:
        content = urlencode(self.form(message)).encode()

        with self.client() as http:

            def call() -> httpx.Response:
                return http.post(self.url, content, self.headers)

            response = send_with_retries(call, self.policy, idempotent=False)
        if response.status_code >= 400:
            raise _translate(_rest_error(response, self.url)) from None
        try:
            sid = response.json()["sid"]
        except (ValueError, KeyError, TypeError):
            # Twilio took it (2xx), so it is sent; the status callback, which carries the
            # reminder id, names the message later.
            log.warning("twilio accepted a message but its answer named no sid")
            sid = None
        return SendResult(provider_message_id=sid)

    def close(self) -> None:
        with self.clients_lock:
            clients, self.clients, self.idle = self.clients, [], []
        for client in clients:
            client.close()
        if self.shared_http is not None:
            self.shared_http.close()


def _rest_error(response: httpx.Response, url: str) -> TwilioRestException:
    """Twilio's error body (code, message) as the twilio package's own exception."""
    code, text = None, f"HTTP {response.status_code}"
    try:
        body = response.json()
        code, text = body.get("code"), body.get("message") or text
    except (ValueError, AttributeError):
        pass
    return TwilioRestException(response.status_code, url, msg=text, code=code, method="POST")


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
