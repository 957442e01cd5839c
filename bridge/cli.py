"""The ``bridge`` command: run, demo, check, db."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.console import Console

from bridge.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Homework Bridge: therapy homework from the EHR to the client and back.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
app.add_typer(db_app, name="db")
outbox_app = typer.Typer(no_args_is_help=True, help="What is stuck in the outboxes.")
app.add_typer(outbox_app, name="outbox")
console = Console()
err = Console(stderr=True)

ConfigOption = typer.Option(..., "--config", "-c", help="The YAML configuration file.")


def _load(path: Path):
    from bridge.config import load_settings

    try:
        return load_settings(path)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error{'s' if len(exc.problems) > 1 else ''}:[/]")
        for problem in exc.problems:
            # soft_wrap: one problem per line, never hard-wrapped at the console width
            err.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def check(config: Path = ConfigOption) -> None:
    """Validate the configuration and print what would run."""
    from bridge.clock import SystemClock
    from bridge.rendering import Renderer
    from bridge.service import build_connectors
    from bridge.store.db import make_engine

    settings = _load(config)
    try:
        connectors = build_connectors(settings, SystemClock())
        renderer = Renderer(settings.messages.templates_dir, settings.practice.default_language)
    except (ConfigError, FileNotFoundError) as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    template_problems = renderer.check_all()
    if template_problems:
        err.print("[bold red]template errors:[/]")
        for problem in template_problems:
            err.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    url = make_engine(settings.database.url).url.render_as_string(hide_password=True)
    console.print(f"[bold]{settings.practice.name}[/] ({settings.practice.timezone})")
    console.print(f"database: {url}")
    for conf in settings.connectors:
        state = "" if conf.enabled else " (disabled)"
        lines = connectors[conf.name].describe() if conf.name in connectors else []
        console.print(
            f"connector {conf.name}: {conf.type}, poll every "
            f"{conf.poll_interval_seconds:g}s{state}" + "".join(f"; {x}" for x in lines)
        )
    channels = settings.channels
    console.print(f"sms channel: {channels.sms}; email channel: {channels.email}")
    if settings.security.secret_key is None:
        console.print(
            "[yellow]security.secret_key is not set: client links stop working when "
            "the process restarts, and replicas cannot share them[/]"
        )
    console.print(
        f"templates: every message, page and note template renders ({renderer.directory})"
    )
    quiet = settings.cadence.quiet_hours
    steps = ", ".join(f"{s.name} ({s.anchor}{s.offset_hours:+g}h)" for s in settings.cadence.steps)
    console.print(f"cadence: {steps}; quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M} local")
    for code, override in settings.cadence.overrides.items():
        console.print(f"  override {code}: " + ", ".join(s.name for s in override))
    console.print(f"public url: {settings.server.public_url or '(not set: no status callbacks)'}")
    console.print("[green]configuration is valid[/]")


@app.command()
def run(config: Path = ConfigOption) -> None:
    """Run the service: migrations, then the web app and the scheduler."""
    from bridge.service import Bridge
    from bridge.store.db import SQLiteInUse, claim_sqlite_file, make_engine, upgrade
    from bridge.web.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per tick is noise
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per outbound request, too
    settings = _load(config)
    try:
        lock = claim_sqlite_file(settings.database.url)  # noqa: F841 - held while running
    except SQLiteInUse as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    engine = make_engine(settings.database.url)
    upgrade(engine)
    try:
        bridge = Bridge(settings, engine=engine)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    serve(create_app(bridge, run_scheduler=True), settings.server.host, settings.server.port)


def serve(asgi_app, host: str, port: int) -> None:
    """The HTTP server as every replica runs it (benchmarks use this too).

    No access log: request lines carry client-link tokens, and a line per request would
    cost more than applying many a webhook.
    """
    import uvicorn

    uvicorn.run(asgi_app, host=host, port=port, log_level="info", access_log=False)


@app.command()
def demo(
    seed: int = typer.Option(7, help="Seed for the simulated caseload."),
    clients: int = typer.Option(20, min=3, max=24, help="How many simulated clients."),
    days: int = typer.Option(14, min=1, max=28, help="Simulated days."),
) -> None:
    """The whole loop on embedded defaults: SQLite, a simulated EHR, the console channel."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bridge.demo import run_demo
    from bridge.reports import render_scorecard

    console.print("[bold]Homework Bridge demo[/]: a simulated practice, two weeks on a fast clock")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("starting", total=1)

        def progress(n, total, now, sent, replies, notes) -> None:
            if n % 8 and n != total:
                return
            bar.update(
                task,
                completed=n,
                total=total,
                description=f"{now:%a %d %b %H:%M} UTC  texts sent {sent:>3}  "
                f"replies {replies:>3}  notes written {notes:>3}",
            )

        result = run_demo(seed=seed, clients=clients, days=days, progress=progress)
    console.print(render_scorecard(result.scorecard))
    console.print(f"(database kept at {result.db_url.removeprefix('sqlite:///')})", style="dim")


@db_app.command("upgrade")
def db_upgrade(config: Path = ConfigOption, revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from bridge.store.db import current_revision, make_engine, upgrade

    settings = _load(config)
    engine = make_engine(settings.database.url)
    upgrade(engine, revision)
    console.print(f"database at revision {current_revision(engine)}")


@db_app.command("current")
def db_current(config: Path = ConfigOption) -> None:
    """Print the database's schema revision."""
    from bridge.store.db import current_revision, make_engine

    settings = _load(config)
    console.print(current_revision(make_engine(settings.database.url)) or "(empty)")


def _outbox_session(config: Path):
    from bridge.clock import SystemClock
    from bridge.store.db import make_engine, session_scope

    settings = _load(config)
    return session_scope(make_engine(settings.database.url)), SystemClock().now()


@outbox_app.command("list")
def outbox_list(
    config: Path = ConfigOption,
    limit: int = typer.Option(500, min=1, help="At most this many of each kind, oldest first."),
) -> None:
    """List failed (dead-letter) and retrying items, with their reasons."""
    from rich.table import Table

    from bridge.outbox_admin import stuck

    scope, now = _outbox_session(config)
    with scope as session:
        items = stuck(session, now, limit)
    if not items:
        console.print("nothing is stuck")
        return
    table = Table("kind", "id", "assignment", "what", "state", "attempts", "reason")
    for i in items:
        table.add_row(i.kind, str(i.id), i.assignment, i.what, i.state, str(i.attempts),
                      i.reason or "")  # fmt: skip
    console.print(table)


def _outbox_action(action: str, config: Path, kind: str, item_id: int) -> None:
    from bridge import outbox_admin

    scope, now = _outbox_session(config)
    try:
        with scope as session:
            getattr(outbox_admin, action)(session, kind, item_id, now)
    except outbox_admin.OutboxError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"{kind} {item_id}: {'due again now' if action == 'retry' else 'dropped'}")


@outbox_app.command("retry")
def outbox_retry(kind: str, item_id: int, config: Path = ConfigOption) -> None:
    """Put a failed reminder or write-back back in line, due now."""
    _outbox_action("retry", config, kind, item_id)


@outbox_app.command("drop")
def outbox_drop(kind: str, item_id: int, config: Path = ConfigOption) -> None:
    """Cancel a reminder or write-back for good."""
    _outbox_action("drop", config, kind, item_id)


def main() -> None:  # pragma: no cover
    sys.exit(app())
