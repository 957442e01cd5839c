"""Outbound HTTP: one table from status to action, and one bounded retry policy.

401/403 are configuration errors, 408/5xx transient, 429 rate-limited (honour
``Retry-After``); everything else in 4xx is permanent for that request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

from bridge.errors import AmbiguousError, RetriableError

# Failures that prove the request never reached the server: safe to repeat any request.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Answers that say the server did not act on it: 429 and 503.
NOT_ACTED = (429, 503)
# Answers after which a non-idempotent request may or may not have taken effect.
AMBIGUOUS_STATUS = (500, 502, 504)


class Action(StrEnum):
    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    CONFIG = "config"
    FAIL = "fail"


def classify(status: int) -> Action:
    if status < 400:
        return Action.OK
    if status == 429:
        return Action.RATE_LIMITED
    if status in (408, 425) or status >= 500:
        return Action.RETRY
    if status in (401, 403):
        return Action.CONFIG
    return Action.FAIL


def retry_after_seconds(value: str | None, date: str | None = None) -> float | None:
    """``Retry-After`` as delta-seconds, or as an HTTP date measured from the response's Date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
        sent = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None
    if sent is None:
        return None
    return max(0.0, (when - sent).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return min(self.base_delay * 2 ** (attempt - 1), self.max_delay)


def _retriable_response(response: httpx.Response) -> bool:
    return classify(response.status_code) in (Action.RETRY, Action.RATE_LIMITED)


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    """Backoff between attempts, or the server's own ``Retry-After`` when it sent one."""

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        header = None
        if outcome is not None and not outcome.failed:
            headers = outcome.result().headers
            header = retry_after_seconds(headers.get("Retry-After"), headers.get("Date"))
        return policy.delay(state.attempt_number, header)

    return wait


def _give_up(state: RetryCallState) -> httpx.Response:
    """After the last attempt: the last answer, or RetriableError if there was none."""
    assert state.outcome is not None
    if state.outcome.failed:
        exc = state.outcome.exception()
        raise RetriableError(f"{type(exc).__name__} after {state.attempt_number} attempts")
    return state.outcome.result()


def send_with_retries(
    call: Callable[[], httpx.Response], policy: RetryPolicy, *, idempotent: bool = True
) -> httpx.Response:
    """Run ``call`` until it answers something not transient, at most ``policy.attempts`` times.

    Returns the last response (the caller decides what a final 4xx/5xx means); raises
    RetriableError when every attempt ended in a timeout or transport failure. A request that
    is not idempotent (sending a message) is repeated only when it provably did not take
    effect (no connection, 429, 503); a read timeout after it was sent raises AmbiguousError.
    """
    if idempotent:
        retry = retry_if_exception_type(httpx.TransportError) | retry_if_result(_retriable_response)
        attempt = call
    else:
        retry = retry_if_exception_type(NOT_SENT) | retry_if_result(
            lambda r: r.status_code in NOT_ACTED
        )

        def attempt() -> httpx.Response:
            try:
                return call()
            except NOT_SENT:
                raise
            except httpx.TransportError as exc:
                raise AmbiguousError(f"{type(exc).__name__} after the request was sent") from None

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=_wait(policy),
        retry=retry,
        sleep=policy.sleep,
        retry_error_callback=_give_up,
        reraise=False,
    )
    return retrying(attempt)
