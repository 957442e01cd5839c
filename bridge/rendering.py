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
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            keep_trailing_newline=False,
            trim_blocks=True,
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

    def note(self, kind: str, **context: Any) -> str:
        return self.env.get_template(f"notes/{kind}.txt.j2").render(**context).strip() + "\n"
