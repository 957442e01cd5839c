"""Templates: every one renders, StrictUndefined catches a typo, HTML is escaped."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from bridge.cli import app
from bridge.rendering import Renderer, default_templates_dir
from tests.conftest import BASE_CONFIG


def test_shipped_templates_all_render():
    assert Renderer().check_all() == []


def broken_copy(tmp_path):
    folder = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), folder)
    target = folder / "sms" / "es" / "mid_window.txt.j2"
    target.write_text(target.read_text().replace("{{ practice }}", "{{ practise }}"))
    return folder


def test_a_typo_in_a_template_is_reported(tmp_path):
    problems = Renderer(broken_copy(tmp_path)).check_all()
    assert len(problems) == 1
    assert "sms/es/mid_window" in problems[0] and "'practise' is undefined" in problems[0]


def test_check_fails_on_a_broken_template(tmp_path):
    folder = broken_copy(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(BASE_CONFIG + f"messages:\n  templates_dir: {folder}\n")
    result = CliRunner().invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert "'practise' is undefined" in result.output


def test_pages_escape_html_and_texts_do_not_need_to():
    r = Renderer()
    from bridge.page_text import sample_pages

    ctx = sample_pages()["complete"] | {"title": "<script>alert(1)</script>"}
    assert "&lt;script&gt;" in r.page("complete", **ctx)
    sms = r.sms("on_assign", "en", practice="A & B Counseling", title=None, link=None)
    assert sms.startswith("A & B Counseling:")


def test_spanish_falls_back_to_english_for_unknown_languages():
    r = Renderer()
    assert r.language("es-MX") == "es" and r.language("fr") == "en" and r.language(None) == "en"
