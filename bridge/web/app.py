"""The FastAPI application. Every webhook verifies its sender before reading the body."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bridge.service import Bridge
from bridge.web import admin, health, pages, webhooks

log = logging.getLogger(__name__)


def create_app(bridge: Bridge, *, run_scheduler: bool = False) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler = None
        if run_scheduler:
            from bridge.scheduler import build_scheduler

            scheduler = build_scheduler(bridge)
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=True)

    app = FastAPI(title="Homework Bridge", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.bridge = bridge
    app.state.status_commits = webhooks.status_commits(bridge)
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(pages.router)
    app.include_router(admin.router)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)

    return app
