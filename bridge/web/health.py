"""Liveness and readiness for the container's HEALTHCHECK and the load balancer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    bridge = request.app.state.bridge

    def ping() -> None:
        with bridge.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "connectors": sorted(bridge.connectors)})
