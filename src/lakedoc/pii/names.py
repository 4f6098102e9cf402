"""The first-name gazetteer for PERSON (``pii.name_gazetteer``): its name lists, English word list and
settings. The recognizer itself is
:class:`lakedoc.pii.recognizers.name_gazetteer_recognizer.NameGazetteerRecognizer`.

The small spaCy models miss many names, above all non-English ones ("Csanád P Gere", "Tomomi
Nishiyama") and names in short, context-poor sentences. The recognizer reads the NLP pass's tokens
(no second pass over the text) and reports:

* a known first name followed by capitalised tokens, initials ("J", "J.") or name particles
  ("van", "ten", "de"...): ``Faina D. Yefremova`` -> one PERSON span (``score_full``);
* a known first name alone when spaCy tags it as a proper noun (``score_single``), unless spaCy's NER
  put it inside a place/organisation entity (``"Florence"`` the city stays a LOCATION);
* optionally (``lowercase``) a lower-case known first name that is no English word, directly followed
  by lower-case words that are no English words either (``patricia desrosiers``).

First names come from an offline list shipped inside an installed package (``sources``):
``gender_guesser`` — Jörg Michael's ``nam_dict.txt`` (~61,000 first-name spellings of 54 countries),
bundled in the ``gender-guesser`` wheel: a general source, independent of any test-data generator
(Faker's locale lists would match Faker-generated test sets too well to be an honest measure).

A first name that is also an English word (WordNet's index in the spaCy lemmatizer: "Grace", "Will",
"Florence") counts only when spaCy tags it a proper noun, and not alone when spaCy's NER calls it a
place. ``exclude`` (case-insensitive) holds words never taken as a name, and words that, following
a first name, make the match a street or an organisation ("Devon Street", "Russell Investments").
"""
from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lakedoc.config_schema import ConfigError, NameGazetteerSettings, NameSource

SOURCES: tuple[str, ...] = typing.get_args(NameSource)  # the offline first-name lists
PARTICLES = frozenset({"van", "von", "der", "den", "de", "del", "della", "di", "da", "dos", "das", "du", "le", "la",
                       "ten", "ter", "bin", "ibn", "al", "el", "mac", "st"})


def norm_name(word: str) -> str:
    """A name's normalised ``Title`` case spelling, as in the first-name lists."""
    return word[:1].upper() + word[1:].lower()


@functools.lru_cache(maxsize=8)
def load_first_names(sources: tuple[str, ...], min_chars: int = 3) -> frozenset[str]:
    """First names (normalised ``Title`` case) from the named offline sources. Cached per process."""
    names: set[str] = set()
    for src in sources:
        if src == "gender_guesser":
            names |= _gender_guesser_names()
        else:
            raise ConfigError(f"'pii.name_gazetteer.sources' holds {src!r}; allowed: {', '.join(SOURCES)}")
    return frozenset(n for n in names if len(n) >= min_chars)


def _gender_guesser_names() -> set[str]:
    try:
        from importlib.resources import files

        path = files("gender_guesser") / "data" / "nam_dict.txt"
        text = path.read_text(encoding="utf-8")
    except (ImportError, ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError("'pii.name_gazetteer.sources' names gender_guesser but the package is not "
                          "installed (pip install gender-guesser; it is in requirements.txt)") from exc
    out: set[str] = set()
    for line in text.splitlines():
        if not line or line[0] in "#=":
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        name = parts[1]
        for variant in ((name.replace("+", ""), name.replace("+", "-")) if "+" in name else (name,)):
            if variant.isalpha():
                out.add(norm_name(variant))
            elif "-" in variant and all(p.isalpha() for p in variant.split("-")):
                out.add("-".join(norm_name(p) for p in variant.split("-")))
    return out


def english_words(nlp) -> frozenset:
    """The English word list of a spaCy pipeline's rule lemmatizer (WordNet's index of nouns, verbs,
    adjectives and adverbs), lower case; empty when the pipeline has no such table."""
    out: set[str] = set()
    for name in list(getattr(nlp, "pipe_names", ())) + list(getattr(nlp, "disabled", ())):
        lookups = getattr(nlp.get_pipe(name), "lookups", None)
        if lookups is not None and lookups.has_table("lemma_index"):
            for v in lookups.get_table("lemma_index").values():
                out.update(w for w in v if "_" not in w)
    return frozenset(out)


def gazetteer_settings(g: Mapping[str, Any] | None) -> NameGazetteerSettings:
    """``pii.name_gazetteer`` as its model, every key left out at its default (the defaults, types and
    bounds are defined once, in :class:`lakedoc.config_schema.NameGazetteerSettings`); a bad value is a
    :class:`ConfigError` naming the key."""
    try:
        return NameGazetteerSettings.model_validate(dict(g or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"'pii.name_gazetteer.{where}': {err['msg']}, got {err.get('input')!r}") from None


def check_settings(g: Mapping[str, Any] | None) -> dict:
    """Validate ``pii.name_gazetteer`` (:func:`gazetteer_settings`); return it as a plain dict, as
    configured (the configuration hash sees what was configured)."""
    typed = gazetteer_settings(g)
    if typed.enabled and not typed.sources:
        raise ConfigError("'pii.name_gazetteer.sources' must name at least one source when enabled: "
                          + ", ".join(SOURCES))
    return dict(g or {})
