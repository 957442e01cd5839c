"""Words on the client's completion page, in each language the bridge speaks."""

from __future__ import annotations

BARRIERS = ("forgot", "too_busy", "too_hard", "avoided", "no_opportunity", "other")

TEXT = {
    "en": {
        "heading": "Your practice exercise",
        "from": "From",
        "frequency": "How often",
        "duration": "How long",
        "success": "What counts as done",
        "how": "How did it go?",
        "done": "Done",
        "partial": "Partly",
        "not_done": "Not yet",
        "times": "How many times did you do it?",
        "quality": "How did it go, from 1 (hard) to 5 (great)?",
        "barriers": "What got in the way?",
        "barrier": {
            "forgot": "I forgot",
            "too_busy": "Too busy",
            "too_hard": "Too hard",
            "avoided": "I avoided it",
            "no_opportunity": "No opportunity",
            "other": "Something else",
        },
        "note": "Anything you want your therapist to know? (optional)",
        "submit": "Send to my therapist",
        "thanks_title": "Thank you",
        "thanks": "Your therapist will see this before your next session. You can come back "
        "to this page to change your answer.",
        "change": "Change my answer",
        "problem_title": "This link isn't working",
        "expired": "This link has expired. Your next reminder will bring a new one, or you can "
        "tell your therapist how it went at your next session.",
        "invalid": "This link isn't valid. Please use the most recent link we sent you.",
        "fix": "Please check the form:",
        "choose_status": "Choose Done, Partly or Not yet.",
        "bad_times": "The number of times should be between 0 and 100.",
        "bad_quality": "The rating should be between 1 and 5.",
        "bad_barrier": "Choose from the list of things that got in the way.",
        "long_note": "The note is too long (1000 characters at most).",
    },
    "es": {
        "heading": "Su ejercicio de práctica",
        "from": "De",
        "frequency": "Con qué frecuencia",
        "duration": "Cuánto tiempo",
        "success": "Qué cuenta como hecho",
        "how": "¿Cómo le fue?",
        "done": "Hecho",
        "partial": "En parte",
        "not_done": "Todavía no",
        "times": "¿Cuántas veces lo hizo?",
        "quality": "¿Cómo le fue, de 1 (difícil) a 5 (muy bien)?",
        "barriers": "¿Qué se lo impidió?",
        "barrier": {
            "forgot": "Se me olvidó",
            "too_busy": "Demasiado ocupado/a",
            "too_hard": "Demasiado difícil",
            "avoided": "Lo evité",
            "no_opportunity": "No tuve oportunidad",
            "other": "Otra cosa",
        },
        "note": "¿Algo que quiera contarle a su terapeuta? (opcional)",
        "submit": "Enviar a mi terapeuta",
        "thanks_title": "Gracias",
        "thanks": "Su terapeuta verá esto antes de su próxima sesión. Puede volver a esta "
        "página para cambiar su respuesta.",
        "change": "Cambiar mi respuesta",
        "problem_title": "Este enlace no funciona",
        "expired": "Este enlace venció. Su próximo recordatorio traerá uno nuevo, o puede "
        "contarle a su terapeuta cómo le fue en su próxima sesión.",
        "invalid": "Este enlace no es válido. Use el enlace más reciente que le enviamos.",
        "fix": "Revise el formulario:",
        "choose_status": "Elija Hecho, En parte o Todavía no.",
        "bad_times": "El número de veces debe estar entre 0 y 100.",
        "bad_quality": "La calificación debe estar entre 1 y 5.",
        "bad_barrier": "Elija de la lista de cosas que se lo impidieron.",
        "long_note": "La nota es demasiado larga (1000 caracteres como máximo).",
    },
}


def sample_pages() -> dict[str, dict]:
    t = TEXT["en"]
    form = {"status": "partial", "times": "2", "quality": "3", "barriers": ["too_busy"],
            "note": "Busy week."}  # fmt: skip
    return {
        "complete": {"t": t, "lang": "en", "practice": "Sample Practice", "title": "Thought record",
                     "instructions": "Write one situation a day.", "frequency": "3 times a week",
                     "duration": "10 minutes", "success_criteria": "Three records.",
                     "repetitions": 3, "form": form, "errors": [], "barriers": BARRIERS,
                     "action": "/c/sample"},
        "thanks": {"t": t, "lang": "en", "practice": "Sample Practice", "action": "/c/sample"},
        "problem": {"t": t, "lang": "en", "message": t["expired"]},
    }  # fmt: skip
