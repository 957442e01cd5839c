"""Inbound SMS text -> intent: a big table, because clients type anything."""

from __future__ import annotations

import pytest

from bridge.replies import (
    HELP_KEYWORDS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    Intent,
    Reply,
    parse_reply,
)

DONE, PARTIAL, NOT_DONE = Intent.done, Intent.partial, Intent.not_done
RATING, STOP, START, HELP, UNKNOWN = (
    Intent.rating,
    Intent.stop,
    Intent.start,
    Intent.help,
    Intent.unknown,
)

CASES: list[tuple[str, Reply]] = [
    # -- done ------------------------------------------------------------------------
    ("DONE", Reply(DONE, language="en")),
    ("done", Reply(DONE, language="en")),
    ("Done", Reply(DONE, language="en")),
    ("DONE!", Reply(DONE, language="en")),
    ("done.", Reply(DONE, language="en")),
    ("  done  \n", Reply(DONE, language="en")),
    ("...done!!!", Reply(DONE, language="en")),
    ("Done 👍", Reply(DONE, language="en")),
    ("Done :)", Reply(DONE, language="en")),
    ("YES DONE", Reply(DONE, language="en")),
    ("yes, done", Reply(DONE, language="en")),
    ("ok done", Reply(DONE, language="en")),
    ("all done", Reply(DONE, language="en")),
    ("I did it!", Reply(DONE, language="en")),
    ("finished", Reply(DONE, language="en")),
    ("Completed.", Reply(DONE, language="en")),
    ("Done, thanks!", Reply(DONE, language="en")),
    ("done thank you", Reply(DONE, language="en")),
    ("ＤＯＮＥ", Reply(DONE, language="en")),  # full-width
    # done with a rating
    ("Done 4", Reply(DONE, rating=4, language="en")),
    ("done4", Reply(DONE, rating=4, language="en")),
    ("DONE, 5", Reply(DONE, rating=5, language="en")),
    ("done - 1", Reply(DONE, rating=1, language="en")),
    ("done 4/5", Reply(DONE, rating=4, language="en")),
    ("done 3 of 5", Reply(DONE, rating=3, language="en")),
    ("yes done 2 thanks", Reply(DONE, rating=2, language="en")),
    # Spanish
    ("LISTO", Reply(DONE, language="es")),
    ("listo!", Reply(DONE, language="es")),
    ("Lista", Reply(DONE, language="es")),
    ("HECHO", Reply(DONE, language="es")),
    ("Hecha.", Reply(DONE, language="es")),
    ("TERMINADO", Reply(DONE, language="es")),
    ("Terminé", Reply(DONE, language="es")),
    ("ya lo hice", Reply(DONE, language="es")),
    ("Sí, listo", Reply(DONE, language="es")),
    ("listo 5", Reply(DONE, rating=5, language="es")),
    ("Hecho 4 de 5", Reply(DONE, rating=4, language="es")),
    ("listo, gracias", Reply(DONE, language="es")),
    # -- partial ---------------------------------------------------------------------
    ("PARTLY", Reply(PARTIAL, language="en")),
    ("partly.", Reply(PARTIAL, language="en")),
    ("Partial", Reply(PARTIAL, language="en")),
    ("partially", Reply(PARTIAL, language="en")),
    ("half", Reply(PARTIAL, language="en")),
    ("some of it", Reply(PARTIAL, language="en")),
    ("partly 3", Reply(PARTIAL, rating=3, language="en")),
    ("PARTLY-2", Reply(PARTIAL, rating=2, language="en")),
    ("partial 5/5", Reply(PARTIAL, rating=5, language="en")),
    ("PARCIAL", Reply(PARTIAL, language="es")),
    ("parcialmente", Reply(PARTIAL, language="es")),
    ("EN PARTE", Reply(PARTIAL, language="es")),
    ("en-parte", Reply(PARTIAL, language="es")),
    ("a medias", Reply(PARTIAL, language="es")),
    ("en parte 2", Reply(PARTIAL, rating=2, language="es")),
    # -- not done --------------------------------------------------------------------
    ("NOT YET", Reply(NOT_DONE, language="en")),
    ("not yet", Reply(NOT_DONE, language="en")),
    ("Not yet.", Reply(NOT_DONE, language="en")),
    ("NOTYET", Reply(NOT_DONE, language="en")),
    ("not-yet", Reply(NOT_DONE, language="en")),
    ("not   yet", Reply(NOT_DONE, language="en")),
    ("NO", Reply(NOT_DONE)),
    ("no.", Reply(NOT_DONE)),
    ("No!", Reply(NOT_DONE)),
    ("no, not yet", Reply(NOT_DONE, language="en")),
    ("nope", Reply(NOT_DONE, language="en")),
    ("didn't", Reply(NOT_DONE, language="en")),
    ("didn’t", Reply(NOT_DONE, language="en")),  # curly apostrophe
    ("not done", Reply(NOT_DONE, language="en")),
    ("TODAVIA NO", Reply(NOT_DONE, language="es")),
    ("todavía no", Reply(NOT_DONE, language="es")),
    ("Todavía no.", Reply(NOT_DONE, language="es")),
    ("AUN NO", Reply(NOT_DONE, language="es")),
    ("aún no", Reply(NOT_DONE, language="es")),
    ("no lo hice", Reply(NOT_DONE, language="es")),
    # -- a lone rating ----------------------------------------------------------------
    ("1", Reply(RATING, rating=1)),
    ("3", Reply(RATING, rating=3)),
    ("5", Reply(RATING, rating=5)),
    (" 4 ", Reply(RATING, rating=4)),
    ("4.", Reply(RATING, rating=4)),
    ("4!", Reply(RATING, rating=4)),
    ("4/5", Reply(RATING, rating=4)),
    ("4 / 5", Reply(RATING, rating=4)),
    ("5/5", Reply(RATING, rating=5)),
    ("4 of 5", Reply(RATING, rating=4)),
    ("4 out of 5", Reply(RATING, rating=4)),
    ("4 de 5", Reply(RATING, rating=4)),
    ("２", Reply(RATING, rating=2)),  # full-width digit
    # -- opt-out (Twilio's set, plus Spanish) -------------------------------------------
    ("STOP", Reply(STOP, language="en")),
    ("stop", Reply(STOP, language="en")),
    ("Stop.", Reply(STOP, language="en")),
    ("STOP!!", Reply(STOP, language="en")),
    ("  stop \n", Reply(STOP, language="en")),
    ("STOPALL", Reply(STOP, language="en")),
    ("Unsubscribe", Reply(STOP, language="en")),
    ("CANCEL", Reply(STOP, language="en")),
    ("end", Reply(STOP, language="en")),
    ("QUIT", Reply(STOP, language="en")),
    ("revoke", Reply(STOP, language="en")),
    ("OPTOUT", Reply(STOP, language="en")),
    ("opt-out", Reply(STOP, language="en")),
    ("PARAR", Reply(STOP, language="es")),
    ("parár", Reply(STOP, language="es")),
    ("DETENER", Reply(STOP, language="es")),
    ("Alto", Reply(STOP, language="es")),
    ("BAJA", Reply(STOP, language="es")),
    ("cancelar", Reply(STOP, language="es")),
    # -- opt-in: Twilio treats YES as START --------------------------------------------
    ("START", Reply(START, language="en")),
    ("start.", Reply(START, language="en")),
    ("UNSTOP", Reply(START, language="en")),
    ("YES", Reply(START, language="en")),
    ("yes!", Reply(START, language="en")),
    ("INICIO", Reply(START, language="es")),
    ("Comenzar", Reply(START, language="es")),
    # -- help ------------------------------------------------------------------------
    ("HELP", Reply(HELP, language="en")),
    ("help?", Reply(HELP, language="en")),
    ("INFO", Reply(HELP)),
    ("AYUDA", Reply(HELP, language="es")),
    ("¿Ayuda?", Reply(HELP, language="es")),
    # -- unknown: ratings out of range ---------------------------------------------------
    ("0", Reply(UNKNOWN)),
    ("6", Reply(UNKNOWN)),
    ("10", Reply(UNKNOWN)),
    ("04", Reply(UNKNOWN)),
    ("3.5", Reply(UNKNOWN)),
    ("4/10", Reply(UNKNOWN)),
    ("6/5", Reply(UNKNOWN)),
    ("4 5", Reply(UNKNOWN)),
    ("-3", Reply(UNKNOWN)),
    ("done -2", Reply(UNKNOWN)),
    ("done 0", Reply(UNKNOWN)),
    ("done 7", Reply(UNKNOWN)),
    ("done 10", Reply(UNKNOWN)),
    ("partly 6", Reply(UNKNOWN)),
    ("not yet 3", Reply(UNKNOWN)),  # a rating is for work that was done
    # -- unknown: keywords inside a sentence (Twilio matches the whole message) --------
    ("please don't stop reminding me", Reply(UNKNOWN)),
    ("stop please", Reply(UNKNOWN)),
    ("Stop all", Reply(UNKNOWN)),
    ("STOP STOP", Reply(UNKNOWN)),
    ("I want to unsubscribe", Reply(UNKNOWN)),
    ("the end", Reply(UNKNOWN)),
    ("help me with the worksheet", Reply(UNKNOWN)),
    ("yes please", Reply(UNKNOWN)),
    ("start over", Reply(UNKNOWN)),
    # -- unknown: near misses ----------------------------------------------------------
    ("", Reply(UNKNOWN)),
    ("   ", Reply(UNKNOWN)),
    ("!!!", Reply(UNKNOWN)),
    ("✅", Reply(UNKNOWN)),
    ("👍", Reply(UNKNOWN)),
    ("ok", Reply(UNKNOWN)),
    ("thanks", Reply(UNKNOWN)),
    ("no thanks", Reply(UNKNOWN)),
    ("yes yes", Reply(UNKNOWN)),
    ("don", Reply(UNKNOWN)),
    ("donee", Reply(UNKNOWN)),
    ("d o n e", Reply(UNKNOWN)),
    ("undone", Reply(UNKNOWN)),
    ("done?", Reply(DONE, language="en")),  # punctuation-insensitive, by design
    ("not done yet but soon", Reply(UNKNOWN)),
    ("done with half of it", Reply(UNKNOWN)),
    ("I'm done with this therapy", Reply(UNKNOWN)),
    ("part", Reply(UNKNOWN)),
    ("listos", Reply(UNKNOWN)),
    ("todavia", Reply(UNKNOWN)),
    ("si", Reply(UNKNOWN)),
    ("stopp", Reply(UNKNOWN)),
    ("st0p", Reply(UNKNOWN)),
    ("4 done", Reply(UNKNOWN)),
    ("call me", Reply(UNKNOWN)),
    ("停止", Reply(UNKNOWN)),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[repr(t) for t, _ in CASES])
def test_parse_reply(text: str, expected: Reply) -> None:
    assert parse_reply(text) == expected


def test_table_has_no_duplicate_inputs() -> None:
    texts = [t for t, _ in CASES]
    assert len(texts) == len(set(texts))


def test_ratings_only_in_range() -> None:
    for n in range(-3, 100):
        got = parse_reply(str(n))
        if 1 <= n <= 5:
            assert got == Reply(RATING, rating=n)
        else:
            assert got.intent is UNKNOWN, n
        done = parse_reply(f"done {n}")
        assert done == (Reply(DONE, rating=n, language="en") if 1 <= n <= 5 else Reply(UNKNOWN))


@pytest.mark.parametrize(
    ("keywords", "intent"),
    [(OPT_OUT_KEYWORDS, STOP), (OPT_IN_KEYWORDS, START), (HELP_KEYWORDS, HELP)],
)
def test_every_exported_keyword_is_recognised_alone(keywords: frozenset, intent: Intent) -> None:
    for word in keywords:
        for text in (word, word.lower(), word.title(), f" {word}. ", f"{word}!"):
            assert parse_reply(text).intent is intent, text
        assert parse_reply(f"please {word.lower()} now").intent is UNKNOWN, word


def test_exported_keyword_sets() -> None:
    opt_out = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
    opt_out |= {"PARAR", "DETENER", "ALTO", "BAJA", "CANCELAR"}
    opt_in = {"START", "YES", "UNSTOP", "INICIO", "COMENZAR"}
    assert opt_out == OPT_OUT_KEYWORDS
    assert opt_in == OPT_IN_KEYWORDS
    assert {"HELP", "INFO", "AYUDA"} == HELP_KEYWORDS
    assert not (OPT_OUT_KEYWORDS & OPT_IN_KEYWORDS)
    assert not (OPT_OUT_KEYWORDS & HELP_KEYWORDS)
    assert not (OPT_IN_KEYWORDS & HELP_KEYWORDS)


def test_intent_values_are_stable_strings() -> None:
    assert [i.value for i in Intent] == [
        "done", "partial", "not_done", "rating", "stop", "start", "help", "unknown",
    ]  # fmt: skip


def test_reply_is_immutable() -> None:
    reply = parse_reply("done 4")
    with pytest.raises(AttributeError):
        reply.rating = 5  # type: ignore[misc]
