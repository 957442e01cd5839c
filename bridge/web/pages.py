"""The client's one-tap completion page, opened by a signed, expiring link.

The token is the only key: it names nothing, a forged or expired one gets a friendly page
and changes nothing, and resubmitting the form refines the one completion of the
assignment instead of adding another.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlmodel import Session, select

from bridge import links
from bridge.capture import record_completion
from bridge.domain import Barrier, CompletionData, CompletionStatus, TaskStatus
from bridge.page_text import BARRIERS, TEXT
from bridge.records import assignment_data
from bridge.service import Bridge
from bridge.store.db import session_scope
from bridge.store.models import Assignment, Completion, Patient

router = APIRouter()
NOTE_LIMIT = 1000


@dataclass(frozen=True)
class FormInput:
    status: str
    times: str
    quality: str
    barriers: list[str]
    note: str


def parse_form(form: FormInput, t: dict) -> tuple[dict, list[str]]:
    """Pure: the submitted form into completion fields, or the problems to show."""
    errors = []
    if form.status not in ("done", "partial", "not_done"):
        errors.append(t["choose_status"])
    times = quality = None
    if form.times.strip():
        try:
            times = int(form.times)
            if not 0 <= times <= 100:
                raise ValueError
        except ValueError:
            errors.append(t["bad_times"])
    if form.quality.strip():
        try:
            quality = int(form.quality)
            if not 1 <= quality <= 5:
                raise ValueError
        except ValueError:
            errors.append(t["bad_quality"])
    if any(b not in BARRIERS for b in form.barriers):
        errors.append(t["bad_barrier"])
    if len(form.note) > NOTE_LIMIT:
        errors.append(t["long_note"])
    fields = {
        "quantity": times,
        "quality": quality,
        "barriers": tuple(Barrier(b) for b in dict.fromkeys(form.barriers) if b in BARRIERS),
        "reflection": form.note.strip() or None,
    }
    return fields, errors


def _page(bridge: Bridge, name: str, status: int = 200, **ctx) -> HTMLResponse:
    return HTMLResponse(bridge.renderer.page(name, **ctx), status_code=status)


def _problem(bridge: Bridge, problem: links.LinkProblem) -> HTMLResponse:
    lang = bridge.settings.practice.default_language
    t = TEXT[lang]
    expired = problem == links.LinkProblem.expired
    return _page(bridge, "problem", 410 if expired else 404, t=t, lang=lang,
                 message=t["expired" if expired else "invalid"])  # fmt: skip


def _context(bridge: Bridge, session: Session, assignment: Assignment, token: str) -> dict:
    patient = session.get(Patient, assignment.patient_id)
    lang = bridge.renderer.language(patient.language if patient else None)
    data = assignment_data(assignment)
    completion = session.exec(
        select(Completion).where(Completion.assignment_id == assignment.id)
    ).first()
    form = {"status": "", "times": "", "quality": "", "barriers": [], "note": ""}
    if completion is not None:
        form = {
            "status": completion.status,
            "times": "" if completion.quantity is None else str(completion.quantity),
            "quality": "" if completion.quality is None else str(completion.quality),
            "barriers": [b for b in completion.barriers.split(",") if b],
            "note": completion.reflection or "",
        }
    return {
        "t": TEXT[lang], "lang": lang, "practice": bridge.settings.practice.name,
        "title": data.title, "instructions": data.instructions, "frequency": data.frequency,
        "duration": data.duration, "success_criteria": data.success_criteria,
        "repetitions": data.repetitions, "form": form, "errors": [], "barriers": BARRIERS,
        "action": f"/c/{token}",
    }  # fmt: skip


def _open(bridge: Bridge, session: Session, token: str, now) -> tuple | links.LinkProblem:
    """The link and its assignment, or why the page cannot open (a cancelled one has expired)."""
    link = links.resolve(session, bridge.link_key, token, now)
    if isinstance(link, links.LinkProblem):
        return link
    assignment = session.get(Assignment, link.assignment_id)
    if assignment is None or assignment.status in (
        TaskStatus.cancelled,
        TaskStatus.entered_in_error,
    ):
        return links.LinkProblem.expired
    return link, assignment


@router.get("/c/{token}", response_class=HTMLResponse)
async def open_page(token: str, request: Request) -> HTMLResponse:
    bridge: Bridge = request.app.state.bridge

    def load():
        with Session(bridge.engine) as session:
            opened = _open(bridge, session, token, bridge.clock.now())
            if isinstance(opened, links.LinkProblem):
                return opened
            return _context(bridge, session, opened[1], token)

    result = await run_in_threadpool(load)
    if isinstance(result, links.LinkProblem):
        return _problem(bridge, result)
    return _page(bridge, "complete", **result)


@router.post("/c/{token}", response_class=HTMLResponse)
async def submit(token: str, request: Request) -> HTMLResponse:
    bridge: Bridge = request.app.state.bridge
    if links.verify(bridge.link_key, token) is not None:  # refuse forgeries before reading
        return _problem(bridge, links.LinkProblem.tampered)
    raw = await request.form()
    form = FormInput(
        status=str(raw.get("status", "")), times=str(raw.get("times", "")),
        quality=str(raw.get("quality", "")), barriers=[str(b) for b in raw.getlist("barriers")],
        note=str(raw.get("note", "")),
    )  # fmt: skip

    def apply():
        with session_scope(bridge.engine) as session:
            now = bridge.clock.now()
            opened = _open(bridge, session, token, now)
            if isinstance(opened, links.LinkProblem):
                return opened
            link, assignment = opened
            ctx = _context(bridge, session, assignment, token)
            fields, errors = parse_form(form, ctx["t"])
            if errors:
                ctx["errors"] = errors
                ctx["form"] = {"status": form.status, "times": form.times,
                               "quality": form.quality, "barriers": form.barriers,
                               "note": form.note[:NOTE_LIMIT]}  # fmt: skip
                return ("complete", 422, ctx)
            record_completion(
                session, assignment,
                CompletionData(status=CompletionStatus(form.status), source="page",
                               reported_at=now, **fields),
                bridge.settings, now,
            )  # fmt: skip
            link.used_at = now
            done = {k: ctx[k] for k in ("t", "lang", "practice", "action")}
            return ("thanks", 200, done)

    result = await run_in_threadpool(apply)
    if isinstance(result, links.LinkProblem):
        return _problem(bridge, result)
    name, status, ctx = result
    return _page(bridge, name, status, **ctx)
