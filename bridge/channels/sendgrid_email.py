"""Email through SendGrid's Mail Send API (v3), using the sendgrid package's helpers over httpx.

The sendgrid helpers build the payload; httpx carries it, so one timeout and retry policy
covers every call and respx can stand in for SendGrid in tests. SendGrid may hold no BAA:
the message carries no PHI (rendering sees to that), and nothing identifying a client goes
into categories or custom args, which SendGrid keeps and shows in its activity feed.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
from sendgrid.helpers.mail import (
    Category,
    ClickTracking,
    CustomArg,
    From,
    HtmlContent,
    Mail,
    OpenTracking,
    PlainTextContent,
    Subject,
    To,
    TrackingSettings,
)
from sendgrid.helpers.mail.exceptions import SendGridException

from bridge.channels.base import OutboundMessage, PermanentSendError, SendResult
from bridge.config import SendGridSettings
from bridge.errors import AmbiguousError, RetriableError
from bridge.http import (
    AMBIGUOUS_STATUS,
    Action,
    RetryPolicy,
    classify,
    retry_after_seconds,
    send_with_retries,
)

log = logging.getLogger(__name__)

CATEGORY = "homework-reminder"
REMINDER_ARG = "reminder_id"
# The field SendGrid names when it refuses a recipient's address.
_RECIPIENT_FIELD = re.compile(r"^personalizations\.\d+\.to\.\d+\.email$")
_ADDRESS = re.compile(r"[^\s@<>\"'(),;:]+@[^\s@<>\"'(),;:]+")
MAX_ERROR_CHARS = 300


def redact_addresses(text: str, *known: str) -> str:
    """Error and event text can quote the recipient; logs and rows must not hold it."""
    for value in known:
        if value:
            text = re.sub(re.escape(value), "<address>", text, flags=re.IGNORECASE)
    return _ADDRESS.sub("<address>", text)


class SendGridEmailChannel:
    name = "email"

    def __init__(
        self,
        settings: SendGridSettings,
        *,
        http: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
        api_base: str = "https://api.sendgrid.com",
    ) -> None:
        self.settings = settings
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=settings.timeout_seconds)
        self.policy = policy or RetryPolicy()
        self.url = f"{api_base.rstrip('/')}/v3/mail/send"

    def send(self, message: OutboundMessage) -> SendResult:
        payload = self.payload(message)
        headers = {"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}"}

        def call() -> httpx.Response:
            return self.http.post(
                self.url, json=payload, headers=headers, timeout=self.settings.timeout_seconds
            )

        response = send_with_retries(call, self.policy, idempotent=False)
        if classify(response.status_code) == Action.OK:
            sid = response.headers.get("X-Message-Id") or f"sg-{message.reminder_id}"
            return SendResult(provider_message_id=sid)
        raise _translate(response, message.to)

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The Mail Send body, built by the sendgrid helpers, as a plain dict."""
        if not message.subject:
            raise PermanentSendError("email needs a subject; the renderer produced none")
        if not message.body and not message.html:
            raise PermanentSendError("email needs a text or HTML body; the renderer produced none")
        try:
            mail = Mail(
                from_email=From(self.settings.from_email, self.settings.from_name),
                to_emails=To(message.to),
                subject=Subject(message.subject),
                plain_text_content=PlainTextContent(message.body) if message.body else None,
                html_content=HtmlContent(message.html) if message.html else None,
            )
            # In the personalization: the spec types a message-level custom_args as a string.
            mail.custom_arg = CustomArg(REMINDER_ARG, str(message.reminder_id), p=0)
            mail.category = Category(CATEGORY)
            mail.tracking_settings = _no_tracking()
            return mail.get()
        except SendGridException as exc:  # e.g. the helper found an API key in the content
            raise PermanentSendError(
                f"sendgrid helper refused the message: {type(exc).__name__}"
            ) from None

    def close(self) -> None:
        if self._owns_http:
            self.http.close()


def _no_tracking() -> TrackingSettings:
    """Links stay the bridge's own signed links (no rewriting), and no tracking pixel."""
    tracking = TrackingSettings()
    tracking.click_tracking = ClickTracking(False, False)
    tracking.open_tracking = OpenTracking(False)
    return tracking


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    """SendGrid's ``{"errors": [{"message", "field"}]}``, or nothing when the body is not that."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _describe(errors: list[dict[str, Any]], recipient: str) -> str:
    parts = []
    for error in errors:
        text = str(error.get("message") or "").strip()
        field = error.get("field")
        if field and field != "null":
            text = f"{field}: {text}"
        if text:
            parts.append(text)
    return redact_addresses("; ".join(parts), recipient)[:MAX_ERROR_CHARS]


def _translate(response: httpx.Response, recipient: str) -> Exception:
    """A final non-2xx answer as the bridge's error: retry later, or never again."""
    status = response.status_code
    action = classify(status)
    errors = _errors(response)
    detail = _describe(errors, recipient)
    summary = f"sendgrid {status}" + (f": {detail}" if detail else "")
    log.warning(
        "sendgrid mail send answered %s", status
    )  # never the body: it may quote the address
    if status in AMBIGUOUS_STATUS:
        return AmbiguousError(f"{summary}: SendGrid may have accepted the message")
    if action in (Action.RETRY, Action.RATE_LIMITED):
        headers = response.headers
        wait = retry_after_seconds(headers.get("Retry-After"), headers.get("Date"))
        return RetriableError(summary, retry_after=wait)
    if action == Action.CONFIG:
        hint = "check the API key, its mail.send permission and the verified sender"
        return PermanentSendError(
            f"sendgrid {status}: configuration problem ({hint})"
            + (f": {detail}" if detail else ""),
            code=status,
        )
    if status == 413:
        return PermanentSendError("sendgrid 413: the message is too large", code=status)
    fields = {str(e.get("field") or "") for e in errors}
    if any(_RECIPIENT_FIELD.match(f) for f in fields):
        return PermanentSendError(summary, code=status, consequence="unusable_address")
    return PermanentSendError(summary, code=status)
