"""A first-name gazetteer recognizer for PERSON (``pii.name_gazetteer``).

The small spaCy models miss many names, above all non-English ones ("Csanád P Gere", "Tomomi
Nishiyama") and names in short, context-poor sentences. This recognizer reads the NLP pass's tokens
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
import re
from collections.abc import Sequence

from lakedoc.config_schema import ConfigError

SOURCES = ("gender_guesser",)
KEYS = ("enabled", "sources", "score_full", "score_single", "lowercase", "exclude", "min_chars", "max_tokens",
        "languages")
PARTICLES = frozenset({"van", "von", "der", "den", "de", "del", "della", "di", "da", "dos", "das", "du", "le", "la",
                       "ten", "ter", "bin", "ibn", "al", "el", "mac", "st"})
# spaCy NER labels that, on a lone first name that is also an English word, mean a place ("Florence")
_PLACE_LABELS = frozenset({"GPE", "LOC", "FAC"})
_PROPER_TAGS = frozenset({"NNP", "NNPS"})  # the tagger's proper nouns (PROPN without the attribute ruler)
_INITIAL = re.compile(r"[A-Z]\.?")


def _norm(word: str) -> str:
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
                out.add(_norm(variant))
            elif "-" in variant and all(p.isalpha() for p in variant.split("-")):
                out.add("-".join(_norm(p) for p in variant.split("-")))
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


def check_settings(g: dict) -> dict:
    """Validate ``pii.name_gazetteer`` (already typed by the schema); return a plain dict."""
    g = dict(g or {})
    unknown = set(g) - set(KEYS)
    if unknown:
        raise ConfigError(f"'pii.name_gazetteer' has unknown key(s) {sorted(unknown)}; allowed: {', '.join(KEYS)}")
    g.setdefault("enabled", False)
    srcs = g.get("sources") or []
    if g["enabled"] and not srcs:
        raise ConfigError("'pii.name_gazetteer.sources' must name at least one source when enabled: "
                          + ", ".join(SOURCES))
    for s in srcs:
        if s not in SOURCES:
            raise ConfigError(f"'pii.name_gazetteer.sources' holds {s!r}; allowed: {', '.join(SOURCES)}")
    for k in ("score_full", "score_single"):
        v = g.get(k, 0.5)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ConfigError(f"'pii.name_gazetteer.{k}' must be a score between 0 and 1, got {v!r}")
    if not all(isinstance(w, str) for w in g.get("exclude") or []):
        raise ConfigError("'pii.name_gazetteer.exclude' must be a list of words")
    for k, lo in (("min_chars", 1), ("max_tokens", 1)):
        v = g.get(k, lo)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(f"'pii.name_gazetteer.{k}' must be an integer >= {lo}, got {v!r}")
    return g


def make_recognizer(g: dict, language: str, nlp=None):
    """The Presidio recognizer for these ``pii.name_gazetteer`` settings."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult
    from presidio_analyzer.analysis_explanation import AnalysisExplanation

    names = load_first_names(tuple(g.get("sources") or ()), int(g.get("min_chars", 3)))
    exclude = frozenset(w.casefold() for w in g.get("exclude") or [])
    score_full = float(g.get("score_full", 0.6))
    score_single = float(g.get("score_single", 0.5))
    lowercase = bool(g.get("lowercase", False))
    max_extra = int(g.get("max_tokens", 4)) - 1
    words = english_words(nlp) if nlp is not None else frozenset()

    def is_first(tok) -> bool:
        t = tok.text
        return (len(t) >= 3 and t.isalpha() and not t.isupper() and not tok.is_stop
                and t.casefold() not in exclude and _norm(t) in names)

    def is_cap_word(tok) -> bool:
        t = tok.text
        return (t[:1].isupper() and not t.isupper() and t.replace("-", "").replace("'", "").isalpha()
                and not tok.is_stop)

    class NameGazetteerRecognizer(EntityRecognizer):
        name: str  # set by EntityRecognizer.__init__ (mypy cannot infer it through the local import)

        def load(self) -> None:  # the list is loaded (and cached) above
            pass

        def analyze(self, text: str, entities: Sequence[str], nlp_artifacts=None):
            if "PERSON" not in entities or nlp_artifacts is None or nlp_artifacts.tokens is None:
                return []
            doc = nlp_artifacts.tokens
            out, i, n = [], 0, len(doc)
            while i < n:
                tok = doc[i]
                if not is_first(tok):
                    i += 1
                    continue
                # a first name that is also an English word ("Grace", "Will", "Florence") must be
                # tagged a proper noun (NNP), and not be a place on its own
                ambiguous = tok.lower_ in words
                if ambiguous and tok.tag_ not in _PROPER_TAGS:
                    i += 1
                    continue
                j = i + 1
                if tok.text[0].isupper():
                    while j < n and j - i <= max_extra:
                        nxt = doc[j]
                        if is_cap_word(nxt) or (_INITIAL.fullmatch(nxt.text) and j + 1 < n
                                                and is_cap_word(doc[j + 1])):
                            j += 1
                        elif nxt.text in PARTICLES and j + 1 < n and is_cap_word(doc[j + 1]):
                            j += 1
                        else:
                            break
                    if any(doc[k].lower_ in exclude for k in range(i + 1, j)):
                        i = j  # "Devon Street", "Russell Investments": not a person
                        continue
                    if j - i == 1:
                        if ambiguous and tok.ent_type_ in _PLACE_LABELS:
                            i += 1
                            continue
                        score = score_single
                    else:
                        score = score_full
                elif lowercase and not ambiguous:
                    # lower-case text: a first name directly followed by a word that is no English word
                    while j < n and j - i <= max_extra and doc[j].is_alpha and doc[j].is_lower \
                            and not doc[j].is_stop and doc[j].lower_ not in words:
                        j += 1
                    if j - i == 1:
                        i += 1
                        continue
                    score = score_full
                else:
                    i += 1
                    continue
                span = doc[i:j]
                start, end = span.start_char, span.end_char
                while end > start and text[end - 1] in ".":
                    end -= 1
                expl = AnalysisExplanation(recognizer=self.name, original_score=score,
                                           textual_explanation="first-name gazetteer")
                out.append(RecognizerResult("PERSON", start, end, score, analysis_explanation=expl,
                                            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                                  RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
                i = j
            return out

    return NameGazetteerRecognizer(supported_entities=["PERSON"], name="NameGazetteerRecognizer",
                                   supported_language=language)
