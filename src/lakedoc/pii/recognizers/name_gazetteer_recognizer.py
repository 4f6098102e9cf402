"""``NameGazetteerRecognizer``: PERSON from a first-name list and the NLP pass's tokens.

See :mod:`lakedoc.pii.names` for the rules, the name lists and the settings (``pii.name_gazetteer``).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.analysis_explanation import AnalysisExplanation

from lakedoc.config_schema import NameGazetteerSettings
from lakedoc.pii.names import PARTICLES, english_words, load_first_names, norm_name
from lakedoc.pii.tagging import OnDemandTagger

# spaCy NER labels that, on a lone first name that is also an English word, mean a place ("Florence")
_PLACE_LABELS = frozenset({"GPE", "LOC", "FAC"})
_PROPER_TAGS = frozenset({"NNP", "NNPS"})  # the tagger's proper nouns (PROPN without the attribute ruler)
_INITIAL = re.compile(r"[A-Z]\.?")


class NameGazetteerRecognizer(EntityRecognizer):
    """Reads the tokens of Presidio's NLP artifacts (no second pass over the text) and reports a known
    first name followed by capitalised words, initials or particles (``score_full``), a lone known
    first name tagged a proper noun (``score_single``) and, with ``lowercase``, a lower-case first name
    followed by words that are no English words (``score_full``). The tags of the capitalised first names
    that are also English words are the only ones it reads; when the NLP pass did not run the tagger
    (``tagger`` in ``pii.spacy_disable``), ``tagger`` tags just those tokens (:mod:`lakedoc.pii.tagging`)."""

    name: str  # set by EntityRecognizer.__init__ (mypy cannot infer it from there)

    def __init__(self, first_names: frozenset[str], english: frozenset[str] = frozenset(),
                 exclude: Iterable[str] = (), score_full: float = 0.6, score_single: float = 0.5,
                 lowercase: bool = False, max_tokens: int = 4, supported_language: str = "en",
                 tagger: OnDemandTagger | None = None):
        self.first_names = first_names
        self.tagger = tagger
        self.english = english
        self.exclude = frozenset(w.casefold() for w in exclude)
        self.score_full = float(score_full)
        self.score_single = float(score_single)
        self.lowercase = bool(lowercase)
        self.max_extra = int(max_tokens) - 1
        super().__init__(supported_entities=["PERSON"], name="NameGazetteerRecognizer",
                         supported_language=supported_language)

    @classmethod
    def from_settings(cls, g: NameGazetteerSettings, language: str, nlp=None) -> NameGazetteerRecognizer:
        """The recognizer for these ``pii.name_gazetteer`` settings; ``nlp`` is the spaCy pipeline of
        ``language``, whose lemmatizer tables give the English word list."""
        return cls(first_names=load_first_names(tuple(g.sources), g.min_chars),
                   english=english_words(nlp) if nlp is not None else frozenset(),
                   exclude=g.exclude, score_full=g.score_full, score_single=g.score_single,
                   lowercase=g.lowercase, max_tokens=g.max_tokens, supported_language=language,
                   tagger=OnDemandTagger(nlp) if nlp is not None else None)

    def load(self) -> None:  # the name list is loaded (and cached per process) by from_settings
        pass

    def _is_first(self, tok) -> bool:
        t = tok.text
        return (len(t) >= 3 and t.isalpha() and not t.isupper() and not tok.is_stop
                and t.casefold() not in self.exclude and norm_name(t) in self.first_names)

    @staticmethod
    def _is_cap_word(tok) -> bool:
        t = tok.text
        return (t[:1].isupper() and not t.isupper() and t.replace("-", "").replace("'", "").isalpha()
                and not tok.is_stop)

    def tag_needed(self, docs: Sequence, firsts: Sequence[list[bool]] | None = None) -> None:
        """Tag, in one batch, the only tokens of ``docs`` whose tags :meth:`analyze` reads: capitalised
        first names that are also English words. Nothing to do when the NLP pass ran the tagger; a
        document already tagged is skipped. The engine calls this once per NLP batch."""
        if self.tagger is None or not self.tagger.needed():
            return
        words = self.english
        if firsts is None:
            firsts = [[self._is_first(tok) for tok in doc] for doc in docs]
        self.tagger.tag(docs, [[k for k, tok in enumerate(doc) if first[k] and tok.text[0].isupper()
                                and tok.lower_ in words] for doc, first in zip(docs, firsts, strict=True)])

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts=None):
        if "PERSON" not in entities or nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        doc = nlp_artifacts.tokens
        words, exclude, max_extra, is_cap_word = self.english, self.exclude, self.max_extra, self._is_cap_word
        first = [self._is_first(tok) for tok in doc]
        self.tag_needed([doc], [first])
        out, i, n = [], 0, len(doc)
        while i < n:
            tok = doc[i]
            if not first[i]:
                i += 1
                continue
            # a first name that is also an English word ("Grace", "Will", "Florence") must be
            # tagged a proper noun (NNP), and not be a place on its own (a lower-case one never is a
            # name, whatever its tag: the branches below skip it, so it is not tagged on demand)
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
                    score = self.score_single
                else:
                    score = self.score_full
            elif self.lowercase and not ambiguous:
                # lower-case text: a first name directly followed by a word that is no English word
                while j < n and j - i <= max_extra and doc[j].is_alpha and doc[j].is_lower \
                        and not doc[j].is_stop and doc[j].lower_ not in words:
                    j += 1
                if j - i == 1:
                    i += 1
                    continue
                score = self.score_full
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
