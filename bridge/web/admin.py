"""The operator's API: what is stuck in the outboxes, retry or drop. Bearer-token only."""

from __future__ import annotations

import hmac
from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlmodel import Session

from bridge import outbox_admin
from bridge.service import Bridge
from bridge.store.db import session_scope

router = APIRouter(prefix="/admin")


def _authorised(request: Request) -> bool:
    bridge: Bridge = request.app.state.bridge
    token = bridge.settings.server.admin_token
    if token is None or not token.get_secret_value():
        return False
    given = request.headers.get("authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    return hmac.compare_digest(given.encode(), expected.encode())


DENIED = JSONResponse({"error": "not authorised"}, status_code=401)


@router.get("/outbox")
async def list_outbox(request: Request) -> JSONResponse:
    if not _authorised(request):
        return DENIED
    bridge: Bridge = request.app.state.bridge
    try:
        limit = int(request.query_params.get("limit", "500"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 5000:
        return JSONResponse({"error": "limit must be a whole number from 1 to 5000"},
                            status_code=400)  # fmt: skip

    def load():
        with Session(bridge.engine) as session:
            items = outbox_admin.stuck(session, bridge.clock.now(), limit)
            return [asdict(i) for i in items]

    return JSONResponse({"items": await run_in_threadpool(load)})


@router.post("/outbox/{kind}/{item_id}/{action}")
async def act(kind: str, item_id: int, action: str, request: Request) -> JSONResponse:
    if not _authorised(request):
        return DENIED
    if action not in ("retry", "drop"):
        return JSONResponse({"error": "action must be retry or drop"}, status_code=404)
    bridge: Bridge = request.app.state.bridge

    def apply() -> None:
        with session_scope(bridge.engine) as session:
            getattr(outbox_admin, action)(session, kind, item_id, bridge.clock.now())

    try:
        await run_in_threadpool(apply)
    except outbox_admin.OutboxError as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    return JSONResponse({"kind": kind, "id": item_id, "done": action})
