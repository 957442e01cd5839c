"""What a client's SMS reply means: a pure, forgiving-but-predictable keyword parser.

Opt-out, opt-in and help keywords follow Twilio's rule exactly: the whole message
(ignoring case, surrounding whitespace and punctuation) must be the keyword, so the
bridge's consent record agrees with what the carrier-side filter did. "Please don't
stop" is not an opt-out. Twilio treats YES as opt-in, so YES alone is ``start``:
templates must never ask clients to reply YES.

Completion replies are looser: DONE / PARTLY / NOT YET (and Spanish forms), with an
optional 1-5 rating after DONE or PARTLY ("done 4", "partly 3/5"), an optional leading
"yes"/"ok"/"si" and a trailing "thanks"/"gracias". Anything else is ``unknown``, so the
caller can ask again instead of guessing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Intent(StrEnum):
    done = "done"
    partial = "partial"
    not_done = "not_done"
    rating = "rating"
    stop = "stop"
    start = "start"
    help = "help"
    unknown = "unknown"


@dataclass(frozen=True)
class Reply:
    intent: Intent
    rating: int | None = None
    language: str | None = None  # "en", "es", or None when the words don't tell


# Twilio's default English keywords, plus the Spanish ones the practice supports.
_OPT_OUT = {
    **dict.fromkeys(
        ("stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"), "en"
    ),
    **dict.fromkeys(("parar", "detener", "alto", "baja", "cancelar"), "es"),
}
_OPT_IN = {**dict.fromkeys(("start", "yes", "unstop"), "en"), "inicio": "es", "comenzar": "es"}
_HELP = {"help": "en", "info": None, "ayuda": "es"}

OPT_OUT_KEYWORDS: frozenset[str] = frozenset(k.upper() for k in _OPT_OUT)
OPT_IN_KEYWORDS: frozenset[str] = frozenset(k.upper() for k in _OPT_IN)
HELP_KEYWORDS: frozenset[str] = frozenset(k.upper() for k in _HELP)

_KEYWORDS: dict[str, tuple[Intent, str | None]] = {
    **{k: (Intent.stop, lang) for k, lang in _OPT_OUT.items()},
    **{k: (Intent.start, lang) for k, lang in _OPT_IN.items()},
    **{k: (Intent.help, lang) for k, lang in _HELP.items()},
}


def _phrases(*items: tuple[str, str | None]) -> dict[tuple[str, ...], str | None]:
    return {tuple(text.split()): lang for text, lang in items}


_DONE = _phrases(
    ("done", "en"),
    ("all done", "en"),
    ("did it", "en"),
    ("i did it", "en"),
    ("finished", "en"),
    ("completed", "en"),
    ("listo", "es"),
    ("lista", "es"),
    ("hecho", "es"),
    ("hecha", "es"),
    ("terminado", "es"),
    ("terminada", "es"),
    ("termine", "es"),
    ("lo hice", "es"),
    ("ya lo hice", "es"),
)
_PARTIAL = _phrases(
    ("partly", "en"),
    ("partial", "en"),
    ("partially", "en"),
    ("part of it", "en"),
    ("some of it", "en"),
    ("half", "en"),
    ("half done", "en"),
    ("parcial", "es"),
    ("parcialmente", "es"),
    ("en parte", "es"),
    ("a medias", "es"),
)
_NOT_DONE = _phrases(
    ("not yet", "en"),
    ("notyet", "en"),
    ("no not yet", "en"),
    ("not done", "en"),
    ("nope", "en"),
    ("didnt", "en"),
    ("did not", "en"),
    ("no", None),
    ("todavia no", "es"),
    ("aun no", "es"),
    ("no todavia", "es"),
    ("no lo hice", "es"),
)
# Only around DONE / PARTLY: "no thanks" is a refusal, not a report.
_LEADING = {("yes",), ("ok",), ("okay",), ("si",)}
_TRAILING = {("thanks",), ("thank", "you"), ("thx",), ("ty",), ("gracias",)}
_OUT_OF = {(), ("of", "5"), ("out", "of", "5"), ("de", "5")}

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`]")
_TOKEN = re.compile(r"[a-z]+|[0-9]+")
_NOT_WORD = re.compile(r"[^a-z0-9\s]")
_NEGATIVE = re.compile(r"(?:^|\s)[-\u2212][0-9]")  # "-3" is minus three, not a 3


def _fold(text: str) -> str:
    """Lower-case, accents stripped, compatibility forms (full-width digits) unified."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _rating(tokens: tuple[str, ...]) -> int | None:
    """A lone 1-5 ("4", "4/5", "4 of 5", "4 de 5"), else None."""
    if tokens and re.fullmatch(r"[1-5]", tokens[0]) and tokens[1:] in _OUT_OF:
        return int(tokens[0])
    return None


def _completion(tokens: tuple[str, ...]) -> Reply | None:
    tables = (
        (Intent.done, _DONE, True),
        (Intent.partial, _PARTIAL, True),
        (Intent.not_done, _NOT_DONE, False),
    )
    for intent, table, rated in tables:
        rest = tokens
        if rated:
            if rest[:1] in _LEADING:
                rest = rest[1:]
            for tail in _TRAILING:
                if len(rest) > len(tail) and rest[-len(tail) :] == tail:
                    rest = rest[: -len(tail)]
                    break
        if rest in table:
            return Reply(intent, language=table[rest])
        if not rated:
            continue
        for phrase, lang in table.items():
            if rest[: len(phrase)] == phrase:
                rating = _rating(rest[len(phrase) :])
                if rating is not None:
                    return Reply(intent, rating=rating, language=lang)
    return None


def parse_reply(text: str) -> Reply:
    """Classify one inbound SMS body; never raises on odd text, returns ``unknown``."""
    folded = _fold(text)
    # Keywords: the whole message, punctuation removed ("STOP." and "opt-out" count).
    keyword = " ".join(_NOT_WORD.sub("", folded).split())
    if keyword in _KEYWORDS:
        intent, lang = _KEYWORDS[keyword]
        return Reply(intent, language=lang)

    if _NEGATIVE.search(folded):
        return Reply(Intent.unknown)
    words = _APOSTROPHES.sub("", folded).replace("/", " of ")
    tokens = tuple(_TOKEN.findall(words))
    rating = _rating(tokens)
    if rating is not None:
        return Reply(Intent.rating, rating=rating)
    return _completion(tokens) or Reply(Intent.unknown)


__all__ = ["HELP_KEYWORDS", "OPT_IN_KEYWORDS", "OPT_OUT_KEYWORDS", "Intent", "Reply", "parse_reply"]
