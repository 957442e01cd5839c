"""Message and note templates (Jinja2, StrictUndefined: a missing variable is an error).

Texts are PHI-minimal by default: the homework title only appears when the practice opts
in with ``messages.include_title``; diagnoses never reach a template.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

LANGUAGES = ("en", "es")
SMS_TEMPLATES = (
    "on_assign",
    "mid_window",
    "near_due",
    "overdue",
    "ack_reported",
    "ack_rating",
    "help",
    "unknown",
)
NOTE_TEMPLATES = ("completion", "missed")


def default_templates_dir() -> Path:
    env = os.environ.get("BRIDGE_TEMPLATES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "templates"


class Renderer:
    def __init__(self, directory: str | Path | None = None, default_language: str = "en") -> None:
        self.directory = Path(directory) if directory else default_templates_dir()
        if not self.directory.is_dir():
            raise FileNotFoundError(f"templates folder not found: {self.directory}")
        self.default_language = default_language
        self.env = Environment(
            loader=FileSystemLoader(self.directory),
            undefined=StrictUndefined,
            autoescape=select_autoescape(
                enabled_extensions=("html", "html.j2"), default_for_string=False
            ),
            keep_trailing_newline=False,
            trim_blocks=True,
            auto_reload=False,  # templates load once: no stat() of the file per message
        )

    def language(self, wanted: str | None) -> str:
        lang = (wanted or self.default_language).split("-")[0].lower()
        return lang if lang in LANGUAGES else self.default_language

    def sms(self, name: str, language: str | None, **context: Any) -> str:
        lang = self.language(language)
        try:
            template = self.env.get_template(f"sms/{lang}/{name}.txt.j2")
        except TemplateNotFound:
            template = self.env.get_template(f"sms/en/{name}.txt.j2")
        return " ".join(template.render(**context).split())

    def email(self, step: str, language: str | None, **context: Any) -> tuple[str, str, str]:
        """(subject, text, html). Email may travel without a BAA: it never carries PHI."""
        lang = self.language(language)
        context = {**context, "step": step, "title": None}
        subject = self.env.get_template(f"email/{lang}/subject.txt.j2").render(**context)
        text = self.env.get_template(f"email/{lang}/body.txt.j2").render(**context)
        html = self.env.get_template(f"email/{lang}/body.html.j2").render(**context)
        return " ".join(subject.split()), text.strip() + "\n", html

    def page(self, name: str, **context: Any) -> str:
        return self.env.get_template(f"pages/{name}.html.j2").render(**context)

    def note(self, kind: str, **context: Any) -> str:
        return self.env.get_template(f"notes/{kind}.txt.j2").render(**context).strip() + "\n"

    def check_all(self) -> list[str]:
        """Render every template with sample data; an undefined variable is a problem."""
        from jinja2 import TemplateError

        sample = {
            "practice": "Sample Practice", "contact": "(555) 010-0000", "title": "Sample title",
            "link": "https://bridge.example.org/c/sample", "status": "done",
        }  # fmt: skip
        problems = []
        checks: list[tuple[str, Any]] = []
        for lang in LANGUAGES:
            for name in SMS_TEMPLATES:
                checks.append(
                    (f"sms/{lang}/{name}", lambda n=name, lg=lang: self.sms(n, lg, **sample))
                )
            for step in SMS_TEMPLATES[:4]:
                checks.append((f"email/{lang} ({step})",
                               lambda st=step, lg=lang: self.email(st, lg, **sample)))  # fmt: skip
        for kind in NOTE_TEMPLATES:
            checks.append((f"notes/{kind}", lambda k=kind: self.note(k, **SAMPLE_NOTE)))
        from bridge.page_text import sample_pages

        for page, ctx in sample_pages().items():
            checks.append((f"pages/{page}", lambda p=page, c=ctx: self.page(p, **c)))
        for label, render in checks:
            try:
                render()
            except TemplateError as exc:
                problems.append(f"template {label}: {type(exc).__name__}: {exc}")
        return problems


SAMPLE_NOTE = {
    "title": "Thought record", "type_display": "thought record", "assigned_on": "2026-03-02",
    "due_on": "2026-03-09", "frequency": "3 times a week", "repetitions": 3,
    "reminders_sent": 2, "status_text": "done", "quantity": 2, "quality": 4,
    "barriers": ["too busy"], "reflection": "It helped.", "reported_on": "2026-03-05",
    "source": "text reply", "after_reminder": True, "reachable": True,
    "unreachable_reason": "",
}  # fmt: skip
