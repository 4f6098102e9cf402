"""The Presidio engine of the ``redact_pii`` task: analyzer + anonymizer of one ``pii`` configuration.

* :func:`get_engine` builds a :class:`PiiEngine` **once per Python worker** (module-level cache keyed by
  an :class:`EngineKey`: the configuration hash and the batch size). Nothing heavy is ever broadcast:
  the settings travel as a plain dict (:func:`lakedoc.pii.settings.load_settings`).
* The engine is assembled from :mod:`lakedoc.pii.nlp` (the NLP engine, configured explicitly so that
  nothing is ever downloaded), :mod:`lakedoc.pii.registry` (recognizers), :mod:`lakedoc.pii.operators`
  and :mod:`lakedoc.pii.patches` (offline tldextract, context words without a lemmatizer, no
  transformers pipelines imported with Presidio).
* Texts are analysed in chunks (:mod:`lakedoc.pii.splitting`), the chunks of many texts in one batched
  NLP pass; findings are post-processed (:mod:`lakedoc.pii.postprocess`) and documents redacted into
  :class:`~lakedoc.pii.redaction.Redaction` results (:mod:`lakedoc.pii.redaction`).

Presidio is imported when an engine is built, not with this module: the driver imports it for the
settings functions re-exported here.
"""
from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

from lakedoc.pii.postprocess import SPECIFIC_TYPES, dedupe, propagate
from lakedoc.pii.redaction import Finding, Redaction, redact_documents
from lakedoc.pii.settings import config_hash, load_settings, pii_settings, resolve_hash_key
from lakedoc.pii.splitting import split_text

# the names other modules import from the engine
__all__ = ["SPECIFIC_TYPES", "EngineKey", "Finding", "PiiEngine", "Redaction", "config_hash", "get_engine",
           "load_settings", "resolve_hash_key"]

_QUIET_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "tldextract", "spacy", "filelock")


def quiet() -> None:
    """No warnings or stack traces from the libraries in a normal run (errors still surface)."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"spacy(\..*)?")
    warnings.filterwarnings("ignore", module=r"thinc(\..*)?")
    warnings.filterwarnings("ignore", module=r"presidio_.*")


def _torch_free(cfg) -> bool:
    """No transformers NER model and only spaCy pipelines that run without torch (patch 4)."""
    from lakedoc.pii.patches import torch_free_pipeline

    return not cfg.transformers_model and all(torch_free_pipeline(cfg.spacy_models[lang]) for lang in cfg.languages)


class PiiEngine:
    """Analyzer + anonymizer for one configuration. Build it with :func:`get_engine`."""

    def __init__(self, settings: Mapping, hash_key: str | None = None):
        from lakedoc.pii.patches import torch_blocked

        cfg = pii_settings(settings)  # typed, defaults from lakedoc.config_schema.PiiSettings
        with torch_blocked(_torch_free(cfg)):
            self._build(settings, cfg, hash_key)

    def _build(self, settings: Mapping, cfg, hash_key: str | None) -> None:
        from lakedoc.pii.patches import lazy_hf_pipeline

        lazy_hf_pipeline()  # before Presidio's first import: no transformers.pipelines in the worker
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
        from presidio_anonymizer import AnonymizerEngine

        from lakedoc.pii.nlp import build_nlp_engine
        from lakedoc.pii.operators import build_operators
        from lakedoc.pii.patches import offline_tldextract
        from lakedoc.pii.registry import build_registry

        quiet()
        offline_tldextract()
        self.settings = dict(settings)
        self.languages = list(cfg.languages)
        self.nlp_engine = build_nlp_engine(cfg)
        registry = build_registry(cfg, self.nlp_engine)
        self.entities = list(dict.fromkeys([*cfg.entities, *cfg.deny_list, *[r["entity"] for r in cfg.recognizers]]))
        self.threshold = float(cfg.score_threshold)
        self.entity_thresholds = {k: float(v) for k, v in cfg.entity_thresholds.items()}
        self.min_threshold = min([self.threshold, *self.entity_thresholds.values()])
        # Presidio's context enhancer with its default factors, also reading a few words *after* a
        # match ("781 1704 office"): the default looks only at the 5 words before.
        enhancer = LemmaContextAwareEnhancer(context_similarity_factor=0.35, min_score_with_context_similarity=0.4,
                                             context_prefix_count=5,
                                             context_suffix_count=cfg.context_suffix_words)
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=self.nlp_engine,
                                       supported_languages=self.languages,
                                       default_score_threshold=self.min_threshold,
                                       context_aware_enhancer=enhancer)
        self.anonymizer = AnonymizerEngine()
        # recognizers that read the NLP pass's tokens and prepare a whole batch of them at once (the name
        # gazetteer tags its few ambiguous first names: lakedoc.pii.tagging), per language
        self.batch_preparers = {lang: [prep for r in registry.get_recognizers(lang, all_fields=True)
                                       if callable(prep := getattr(r, "tag_needed", None))]
                                for lang in self.languages}
        self.allow_list = list(cfg.allow_list) or None
        self.chunk_chars = cfg.chunk_chars
        self.propagate = cfg.propagate
        self.propagate_name_parts = cfg.propagate_name_parts
        self.drop_inside = {k: frozenset(v) for k, v in cfg.drop_inside.items()}
        self.batch_size = cfg.batch_size
        self.operators = build_operators(cfg, self.entities, hash_key)

    # analysis ---------------------------------------------------------------------------------------
    def _keep(self, entity_type: str, score: float) -> bool:
        return score >= self.entity_thresholds.get(entity_type, self.threshold)

    def _analyze_piece(self, text: str, lang: str, artifacts=None) -> list:
        return self.analyzer.analyze(text=text, language=lang, entities=self.entities,
                                     nlp_artifacts=artifacts, score_threshold=self.min_threshold,
                                     allow_list=self.allow_list)

    def analyze_many(self, texts: Sequence[str], language: str | None = None
                     ) -> list[list[Finding] | Exception]:
        """Findings per text (offsets in the full text), or the exception that text raised. The chunks
        of all texts go through one batched NLP pass; a failing batch is retried text by text so one
        bad text fails alone."""
        lang = language or self.languages[0]
        pieces: list[tuple[int, int, str]] = []
        for i, text in enumerate(texts):
            for s, e in split_text(text or "", self.chunk_chars):
                if e > s:
                    pieces.append((i, s, text[s:e]))
        out: list[list[Finding] | Exception] = [[] for _ in texts]
        try:
            artifacts = self.nlp_engine.process_batch([p[2] for p in pieces], language=lang,
                                                      batch_size=self.batch_size)
            # (text, artifacts) pairs (Presidio's annotation also allows a third item, context), taken
            # one NLP batch at a time: the preparers see a batch together, and memory stays bounded
            stream = zip(pieces, artifacts, strict=True)
            while group := list(islice(stream, self.batch_size)):
                for prepare in self.batch_preparers.get(lang, ()):
                    prepare([processed[1].tokens for _piece, processed in group])
                for (i, offset, piece), processed in group:
                    art = processed[1]
                    acc = out[i]
                    if isinstance(acc, Exception):
                        continue
                    try:
                        acc.extend(self._to_findings(self._analyze_piece(piece, lang, art), offset))
                    except Exception as exc:  # noqa: BLE001 - the text fails alone
                        out[i] = exc
        except Exception:  # noqa: BLE001 - the NLP pass itself failed: redo text by text
            out = [self._analyze_one(t, lang) for t in texts]
        result: list[list[Finding] | Exception] = []
        for o, t in zip(out, texts, strict=True):
            if isinstance(o, Exception):
                result.append(o)
                continue
            found = dedupe(o, t, self.drop_inside)
            if self.propagate:
                found = dedupe(found + propagate(t or "", found, self.propagate_name_parts), t, self.drop_inside)
            result.append(found)
        return result

    def _analyze_one(self, text: str, lang: str) -> list[Finding] | Exception:
        try:
            found: list[Finding] = []
            for s, e in split_text(text or "", self.chunk_chars):
                if e > s:
                    found.extend(self._to_findings(self._analyze_piece(text[s:e], lang), s))
            return found
        except Exception as exc:  # noqa: BLE001 - returned: the caller fails this text alone
            return exc

    def _to_findings(self, results: Iterable, offset: int) -> list[Finding]:
        out = []
        for r in results:
            if not self._keep(r.entity_type, r.score):
                continue
            meta = r.recognition_metadata or {}
            out.append(Finding(r.entity_type, r.start + offset, r.end + offset, round(float(r.score), 4),
                               str(meta.get("recognizer_name") or meta.get("recognizer_identifier") or "")))
        return out

    def analyze(self, text: str, language: str | None = None) -> list[Finding]:
        res = self.analyze_many([text], language)[0]
        if isinstance(res, Exception):
            raise res
        return res

    # anonymization ----------------------------------------------------------------------------------
    def anonymize(self, text: str, findings: Sequence[Finding]) -> str:
        """Apply the operators. Chunk by chunk (the anonymizer's cost grows with text x entities)."""
        from presidio_anonymizer.entities import RecognizerResult as AnonResult

        if not text:
            return text or ""
        parts = []
        ordered = sorted(findings, key=lambda f: f.start)
        for cs, ce in split_text(text, self.chunk_chars):
            inside = [AnonResult(f.entity_type, max(f.start, cs) - cs, min(f.end, ce) - cs, f.score)
                      for f in ordered if f.start < ce and f.end > cs]
            chunk = text[cs:ce]
            parts.append(self.anonymizer.anonymize(text=chunk, analyzer_results=inside,
                                                   operators=self.operators).text if inside else chunk)
        return "".join(parts)

    def redact_documents(self, docs: Sequence[Mapping], max_chars: int | None = None) -> list[Redaction]:
        """Redact a batch of ``{"text": str, "units": [..] | None}``: a :class:`Redaction` per document
        (:func:`lakedoc.pii.redaction.redact_documents`)."""
        return redact_documents(self, docs, max_chars)


# -- per-worker cache -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EngineKey:
    """What tells two engines apart: everything that decides the output (the configuration hash, which
    covers the hash key through a keyed digest) and the one throughput setting the engine itself
    uses (the NLP batch size). The other throughput knobs (``docs_per_round``, ``partitions_per_slot``)
    concern the stage, not the engine."""

    config_hash: str
    batch_size: int

    @classmethod
    def of(cls, settings: Mapping, hash_key: str | None = None) -> EngineKey:
        return cls(config_hash(settings, hash_key), pii_settings(settings).batch_size)


# Most recently used last; a reused Python worker keeps at most MAX_ENGINES of them (a job has one
# configuration; a long test session or an evaluation sweep has many, and must not grow without end).
_ENGINES: OrderedDict[EngineKey, PiiEngine] = OrderedDict()
_ENGINES_LOCK = threading.Lock()
MAX_ENGINES = 4


def get_engine(settings: Mapping, hash_key: str | None = None) -> PiiEngine:
    """The engine for these settings, built on first use in this Python process and then reused (the
    :data:`MAX_ENGINES` most recently used ones are kept; the spaCy pipelines are shared by all)."""
    key = EngineKey.of(settings, hash_key)
    with _ENGINES_LOCK:
        eng = _ENGINES.get(key)
        if eng is None:
            eng = _ENGINES[key] = PiiEngine(settings, hash_key)
            while len(_ENGINES) > MAX_ENGINES:
                _ENGINES.popitem(last=False)
        else:
            _ENGINES.move_to_end(key)
    return eng
