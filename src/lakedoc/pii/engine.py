"""The Presidio engine of the ``redact_pii`` task, built from the ``pii`` configuration section.

* :func:`load_settings` validates ``cfg["pii"]`` (operators, thresholds, recognizers...) into a plain,
  picklable dict that travels to the Spark workers inside the ``mapInPandas`` closure.
* :func:`get_engine` builds a :class:`PiiEngine` (spaCy/transformers NLP engine, recognizer registry,
  ``AnalyzerEngine``, ``AnonymizerEngine``) **once per Python worker** (module-level cache keyed by the
  settings' fingerprint). Nothing heavy is ever broadcast.
* Offline and quiet: the NLP engine is configured explicitly (Presidio's default ``AnalyzerEngine()``
  would try to download ``en_core_web_lg``); a model that is not installed is a clear error, never a
  download; the e-mail recognizer's ``tldextract`` uses its bundled Public Suffix List snapshot.
* Long texts are split under ``pii.chunk_chars`` (far below spaCy's ``max_length``) on paragraph,
  line, sentence or word boundaries; findings are mapped back to offsets in the full text. spaCy's
  memory then stays bounded by the chunk size (~1 GB per 100k characters otherwise), whatever the
  document's length, and the chunks of many documents share one ``nlp.pipe`` pass.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import types
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lakedoc.config_schema import ConfigError

log = logging.getLogger(__name__)

# Bump when the redaction logic changes in a way that changes output for the same configuration.
REDACTOR_VERSION = "2"
OPERATORS = ("replace", "mask", "redact", "hash")


@dataclass(frozen=True)
class Finding:
    entity_type: str
    start: int
    end: int
    score: float
    recognizer: str


# -- configuration ---------------------------------------------------------------------------------

def _entity_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
        raise ConfigError(f"'{key}': entity types are UPPER_CASE names such as PERSON, got {value!r}")
    return value


def load_settings(section: Mapping[str, Any]) -> dict:
    """Check the ``pii`` section beyond what the schema's types say; return a plain dict."""
    s = json.loads(json.dumps(dict(section), default=str))  # a deep, picklable copy
    langs = s["languages"]
    if not langs or not all(isinstance(x, str) for x in langs):
        raise ConfigError("'pii.languages' must list at least one language code, e.g. [en]")
    for lang in langs:
        if lang not in (s.get("spacy_models") or {}):
            raise ConfigError(f"'pii.spacy_models' has no model for language {lang!r} (pii.languages); "
                              f"configured: {sorted(s.get('spacy_models') or {})}")
    s["entities"] = [_entity_name("pii.entities", e) for e in s["entities"]]
    for ent, thr in (s.get("entity_thresholds") or {}).items():
        _entity_name("pii.entity_thresholds", ent)
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr <= 1:
            raise ConfigError(f"'pii.entity_thresholds.{ent}' must be a score between 0 and 1, got {thr!r}")
    ops = s.get("operators") or {}
    for ent, op in ops.items():
        if ent != "DEFAULT":
            _entity_name("pii.operators", ent)
        if op not in OPERATORS:
            raise ConfigError(f"'pii.operators.{ent}' has value {op!r}; allowed values: {', '.join(OPERATORS)}")
    ops.setdefault("DEFAULT", "replace")
    s["operators"] = ops
    for ent, terms in (s.get("deny_list") or {}).items():
        _entity_name("pii.deny_list", ent)
        if not isinstance(terms, list) or not all(isinstance(t, str) and t for t in terms):
            raise ConfigError(f"'pii.deny_list.{ent}' must be a list of non-empty strings")
    if not all(isinstance(t, str) for t in s.get("allow_list") or []):
        raise ConfigError("'pii.allow_list' must be a list of strings")
    for i, rec in enumerate(s.get("recognizers") or []):
        where = f"pii.recognizers[{i}]"
        if not isinstance(rec, dict) or not rec.get("name") or not rec.get("entity") or not rec.get("patterns"):
            raise ConfigError(f"'{where}' needs name, entity and patterns (a list of {{name, regex, score}})")
        unknown = set(rec) - {"name", "entity", "patterns", "context", "languages"}
        if unknown:
            raise ConfigError(f"'{where}' has unknown key(s) {sorted(unknown)}; allowed: name, entity, "
                              "patterns, context, languages")
        _entity_name(f"{where}.entity", rec["entity"])
        for j, p in enumerate(rec["patterns"]):
            if not isinstance(p, dict) or "regex" not in p:
                raise ConfigError(f"'{where}.patterns[{j}]' needs a regex (and a score)")
            try:  # Presidio compiles patterns with the ``regex`` module (variable-width look-behind)
                import regex

                regex.compile(p["regex"], regex.DOTALL | regex.MULTILINE | regex.IGNORECASE)
            except regex.error as exc:
                raise ConfigError(f"'{where}.patterns[{j}].regex' is not a valid regular expression: {exc}") from exc
            score = p.get("score", 0.5)
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
                raise ConfigError(f"'{where}.patterns[{j}].score' must be between 0 and 1")
    for region in s.get("phone_regions") or []:
        if not isinstance(region, str) or not re.fullmatch(r"[A-Z]{2}", region):
            raise ConfigError(f"'pii.phone_regions' holds {region!r}: regions are two-letter codes such as "
                              f"US or GB (quote \"NO\" in YAML: unquoted it reads as false)")
    if "hash" in ops.values() and not s.get("hash_key"):
        raise ConfigError("'pii.hash_key' (a secret reference) is required when an operator is 'hash'")
    from lakedoc.pii.names import check_settings

    s["name_gazetteer"] = check_settings(s.get("name_gazetteer") or {})
    for ent, outer in (s.get("drop_inside") or {}).items():
        _entity_name("pii.drop_inside", ent)
        if not isinstance(outer, list) or not outer:
            raise ConfigError(f"'pii.drop_inside.{ent}' must list the entity types it is dropped inside of")
        for o in outer:
            _entity_name(f"pii.drop_inside.{ent}", o)
    return s


def uses_hash(settings: Mapping) -> bool:
    return "hash" in settings["operators"].values()


def resolve_hash_key(settings: Mapping) -> str | None:
    """The keyed-hash secret (only when an operator is ``hash``): environment first, then the scope."""
    if not uses_hash(settings):
        return None
    from lakedoc.secrets import resolve_secret

    return resolve_secret(settings["hash_key"], required=True)


# Settings that do not change the output (throughput knobs) stay out of the configuration hash.
_NOT_HASHED = ("batch_size", "docs_per_round", "partitions_per_slot", "hash_key")


def _model_versions(settings: Mapping) -> dict:
    out = {}
    try:
        import spacy

        for _lang, name in sorted(settings["spacy_models"].items()):
            try:
                out[name] = spacy.util.get_package_version(name) or "path"
            except Exception:  # noqa: BLE001 - a model given as a folder
                out[name] = "path"
    except ImportError:  # pragma: no cover
        pass
    try:
        from importlib.metadata import version

        out["presidio_analyzer"] = version("presidio_analyzer")
        out["presidio_anonymizer"] = version("presidio_anonymizer")
    except Exception:  # noqa: BLE001 - versions are informative only; a missing one is left out
        pass
    return out


def config_hash(settings: Mapping, hash_key: str | None = None) -> str:
    """Fingerprint of everything that decides the redacted output: the ``pii`` settings, model and
    Presidio versions, :data:`REDACTOR_VERSION` and (when hashing) a keyed digest of the key itself, so
    rotating the key re-redacts without the key ever being stored."""
    payload = {k: v for k, v in sorted(settings.items()) if k not in _NOT_HASHED}
    payload["_versions"] = _model_versions(settings)
    payload["_redactor"] = REDACTOR_VERSION
    if hash_key:
        payload["_key"] = hmac.new(hash_key.encode(), b"lakedoc-pii-key-id", hashlib.sha256).hexdigest()[:16]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- long texts -----------------------------------------------------------------------------------

_SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", " ")


def split_text(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, end)`` spans covering ``text``, each at most ``max_chars`` long, cut on
    the strongest boundary (paragraph, line, sentence, word) found in the second half of the window."""
    n = len(text)
    if n <= max_chars:
        return [(0, n)]
    spans, pos = [], 0
    while pos < n:
        if n - pos <= max_chars:
            spans.append((pos, n))
            break
        hi = pos + max_chars
        lo = pos + max_chars // 2
        cut = -1
        for sep in _SEPARATORS:
            i = text.rfind(sep, lo, hi - len(sep) + 1)
            if i != -1:
                cut = i + len(sep)
                break
        if cut <= pos:
            cut = hi
        spans.append((pos, cut))
        pos = cut
    return spans


# -- environment ------------------------------------------------------------------------------------

_QUIET_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "tldextract", "spacy", "filelock")


def quiet() -> None:
    """No warnings or stack traces from the libraries in a normal run (errors still surface)."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"spacy(\..*)?")
    warnings.filterwarnings("ignore", module=r"thinc(\..*)?")
    warnings.filterwarnings("ignore", module=r"presidio_.*")


def offline_tldextract() -> None:
    """Point the e-mail recognizer's tldextract at the bundled suffix-list snapshot (no fetch, no cache)."""
    import tldextract
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    if getattr(email_recognizer, "_lakedoc_offline", False):
        return
    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    # deliberate monkeypatch of Presidio's module: its tldextract becomes a stand-in with .extract
    email_recognizer.tldextract = types.SimpleNamespace(extract=extractor)  # type: ignore[assignment]
    email_recognizer._lakedoc_offline = True  # type: ignore[attr-defined]  # marker on the patched module


def _check_spacy_model(name: str) -> None:
    from pathlib import Path

    import spacy

    if not (spacy.util.is_package(name) or Path(name).exists()):
        raise ConfigError(
            f"spaCy model {name!r} (pii.spacy_models) is not installed and lakedoc never downloads models "
            f"at run time: install its wheel (pip install <wheel>, or a cluster/volume library on "
            f"Databricks) or point pii.spacy_models at a model folder"
        )


def _build_nlp_engine(settings: Mapping):
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    engine: SpacyNlpEngine  # TransformersNlpEngine is a SpacyNlpEngine
    ner_conf = NerModelConfiguration()  # Presidio's defaults (labels_to_ignore, entity mapping)
    if settings.get("transformers_model"):
        from presidio_analyzer.nlp_engine import TransformersNlpEngine

        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:  # pragma: no cover
            pass
        models = []
        for lang in settings["languages"]:
            _check_spacy_model(settings["spacy_models"][lang])
            models.append({"lang_code": lang, "model_name": {"spacy": settings["spacy_models"][lang],
                                                             "transformers": settings["transformers_model"]}})
        engine = TransformersNlpEngine(models=models, ner_model_configuration=ner_conf)
    else:
        models = []
        for lang in settings["languages"]:
            _check_spacy_model(settings["spacy_models"][lang])
            models.append({"lang_code": lang, "model_name": settings["spacy_models"][lang]})
        engine = SpacyNlpEngine(models=models, ner_model_configuration=ner_conf)
    engine.load()
    exclude = settings.get("spacy_disable") or []
    pipelines: dict[str, Any] = engine.nlp or {}  # lang -> spaCy Language
    for nlp in pipelines.values():
        for comp in exclude:
            if comp in nlp.pipe_names:
                nlp.disable_pipe(comp)
        nlp.max_length = max(nlp.max_length, int(settings["chunk_chars"]) + 1)
    _lemma_fallback(engine)
    return engine


def _lemma_fallback(engine) -> None:
    """With spaCy's lemmatizer (and the attribute ruler it needs) disabled for speed, tokens have no
    lemma: Presidio's context enhancer then reads the lower-case words instead (it matches context
    words as substrings, so "phones" still holds "phone")."""
    orig = engine._doc_to_nlp_artifact

    def to_artifact(doc, language):
        art = orig(doc, language)
        if art.lemmas and not all(art.lemmas):
            art.lemmas = [lem or tok.lower_ for lem, tok in zip(art.lemmas, doc, strict=False)]
            art.keywords = art.set_keywords(engine, art.lemmas, language)
        return art

    engine._doc_to_nlp_artifact = to_artifact


# -- phone numbers: only where a digit run could be one -------------------------------------------------

_PHONE_WINDOW_MARGIN = 40
_PHONE_RUN = None


def phone_windows(text: str, min_digits: int = 7, margin: int = _PHONE_WINDOW_MARGIN,
                  skip_glued: bool = False) -> list[tuple[int, int]]:
    """Merged ``(start, end)`` windows around every run of digits and phone punctuation (phonenumbers'
    own separator set) that holds at least ``min_digits`` digits. Phone findings with fewer digits are
    dropped anyway (:data:`MIN_PHONE_DIGITS`), so scanning only these windows loses nothing; the margin
    keeps the characters phonenumbers looks at around a match."""
    global _PHONE_RUN
    if _PHONE_RUN is None:
        from phonenumbers.phonenumberutil import _PLUS_CHARS, _VALID_PUNCTUATION

        _PHONE_RUN = re.compile(f"[{_PLUS_CHARS}(\\d][{_VALID_PUNCTUATION}\\d]*\\d")
    out: list[tuple[int, int]] = []
    for m in _PHONE_RUN.finditer(text):
        run = m.group(0)
        digits = sum(c.isdigit() for c in run)
        if digits < min_digits:
            continue
        if skip_glued and digits == len(run) <= 20 and (
                (m.start() and text[m.start() - 1].isalpha()) or (m.end() < len(text) and text[m.end()].isalpha())):
            continue  # "DE89370400440532013000": phonenumbers (leniency >= 1) rejects a number touching a letter
        s, e = max(0, m.start() - margin), min(len(text), m.end() + margin)
        while s > 0 and not text[s - 1].isspace():  # never cut a word: its cut end could look like a number
            s -= 1
        while e < len(text) and not text[e].isspace():
            e += 1
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _windowed_phone_class():
    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class WindowedPhoneRecognizer(PhoneRecognizer):
        """Presidio's phone recognizer (``phonenumbers``, one scan per region) run only on the windows
        of :func:`phone_windows`: most texts hold no 7-digit run and cost nothing."""

        def analyze(self, text, entities, nlp_artifacts=None):
            results = []
            for s, e in phone_windows(text, MIN_PHONE_DIGITS, skip_glued=(self.leniency or 0) >= 1):
                for r in super().analyze(text[s:e], entities, nlp_artifacts):
                    r.start += s
                    r.end += s
                    results.append(r)
            return EntityRecognizer.remove_duplicates(results)

    return WindowedPhoneRecognizer


def WindowedPhoneRecognizer(**kwargs):  # noqa: N802 - a factory: Presidio is imported lazily
    return _windowed_phone_class()(**kwargs)


# -- the engine -------------------------------------------------------------------------------------

class PiiEngine:
    """Analyzer + anonymizer for one configuration. Build it with :func:`get_engine`."""

    def __init__(self, settings: Mapping, hash_key: str | None = None):
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
        from presidio_anonymizer import AnonymizerEngine

        quiet()
        offline_tldextract()
        self.settings = dict(settings)
        self.languages = list(settings["languages"])
        self.nlp_engine = _build_nlp_engine(settings)
        registry = RecognizerRegistry(supported_languages=self.languages)
        registry.load_predefined_recognizers(languages=self.languages, nlp_engine=self.nlp_engine)
        regions = settings.get("phone_regions") or []
        for lang in self.languages:
            if regions:
                registry.remove_recognizer("PhoneRecognizer", language=lang)
                registry.add_recognizer(WindowedPhoneRecognizer(
                    supported_language=lang, supported_regions=regions,
                    leniency=int(settings.get("phone_leniency", 1))))
            for rec in settings.get("recognizers") or []:
                if rec.get("languages") and lang not in rec["languages"]:
                    continue
                registry.add_recognizer(PatternRecognizer(
                    supported_entity=rec["entity"], name=rec["name"], supported_language=lang,
                    patterns=[Pattern(p.get("name", rec["name"]), p["regex"], float(p.get("score", 0.5)))
                              for p in rec["patterns"]],
                    # presidio annotates `context: List[str] = None` (an implicit Optional)
                    context=rec.get("context") or None))  # type: ignore[arg-type]
            for ent, terms in (settings.get("deny_list") or {}).items():
                registry.add_recognizer(PatternRecognizer(supported_entity=ent, name=f"deny_list_{ent}",
                                                          supported_language=lang, deny_list=list(terms)))
            gaz = settings.get("name_gazetteer") or {}
            if gaz.get("enabled") and (not gaz.get("languages") or lang in gaz["languages"]):
                from lakedoc.pii.names import make_recognizer

                registry.add_recognizer(make_recognizer(gaz, lang, (self.nlp_engine.nlp or {}).get(lang)))
        self.entities = list(dict.fromkeys([*settings["entities"], *(settings.get("deny_list") or {}),
                                            *[r["entity"] for r in settings.get("recognizers") or []]]))
        self.threshold = float(settings["score_threshold"])
        self.entity_thresholds = {k: float(v) for k, v in (settings.get("entity_thresholds") or {}).items()}
        self.min_threshold = min([self.threshold, *self.entity_thresholds.values()])
        # Presidio's context enhancer with its default factors, also reading a few words *after* a
        # match ("781 1704 office"): the default looks only at the 5 words before.
        enhancer = LemmaContextAwareEnhancer(context_similarity_factor=0.35, min_score_with_context_similarity=0.4,
                                             context_prefix_count=5,
                                             context_suffix_count=int(settings.get("context_suffix_words", 2)))
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=self.nlp_engine,
                                       supported_languages=self.languages,
                                       default_score_threshold=self.min_threshold,
                                       context_aware_enhancer=enhancer)
        self.anonymizer = AnonymizerEngine()
        self.allow_list = list(settings.get("allow_list") or []) or None
        self.chunk_chars = int(settings["chunk_chars"])
        self.propagate = bool(settings.get("propagate", True))
        self.propagate_name_parts = bool(settings.get("propagate_name_parts", False))
        self.drop_inside = {k: frozenset(v) for k, v in (settings.get("drop_inside") or {}).items()}
        self.batch_size = int(settings["batch_size"])
        self.operators = self._operators(settings, hash_key)

    # operators ------------------------------------------------------------------------------------
    def _operators(self, settings: Mapping, hash_key: str | None) -> dict:
        from presidio_anonymizer.entities import OperatorConfig

        ops = settings["operators"]
        mask_char = settings.get("mask_char") or "*"
        n_hex = int(settings.get("hash_chars", 12))
        if "hash" in ops.values() and not hash_key:
            raise ConfigError("an operator is 'hash' but no key was given (pii.hash_key)")
        key = hash_key.encode() if hash_key else b""

        def make(entity: str, op: str) -> OperatorConfig:
            if op == "replace":
                return OperatorConfig("replace", {"new_value": f"<{entity}>"})
            if op == "mask":
                return OperatorConfig("mask", {"masking_char": mask_char, "chars_to_mask": 10**9,
                                               "from_end": False})
            if op == "redact":
                return OperatorConfig("redact", {})

            def token(value: str, _entity=entity) -> str:
                norm = " ".join(value.split()).casefold()
                digest = hmac.new(key, f"{_entity}\x00{norm}".encode(), hashlib.sha256).hexdigest()
                return f"<{_entity}_{digest[:n_hex]}>"

            return OperatorConfig("custom", {"lambda": token})

        out = {ent: make(ent, ops.get(ent, ops["DEFAULT"])) for ent in self.entities}
        for ent, op in ops.items():
            if ent != "DEFAULT":
                out[ent] = make(ent, op)
        out["DEFAULT"] = make("PII", ops["DEFAULT"])
        return out

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
            for (i, offset, piece), (_, art) in zip(pieces, artifacts, strict=True):
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
            found = _dedupe(o, t, self.drop_inside)
            if self.propagate:
                found = _dedupe(found + _propagate(t or "", found, self.propagate_name_parts), t, self.drop_inside)
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

    def redact_documents(self, docs: Sequence[Mapping], max_chars: int | None = None) -> list[dict]:
        """Redact a batch of ``{"text": str, "units": [..] | None}``. Returns per document
        ``{"status", "error", "redacted_text", "units", "findings"}``; a failure gives
        ``status='redaction_error'`` with no text at all."""
        results: list[dict] = [{} for _ in docs]
        todo = []
        for i, d in enumerate(docs):
            text = d.get("text") or ""
            if max_chars and len(text) > max_chars:
                results[i] = _error(f"text has {len(text)} characters, over pii.max_doc_chars ({max_chars})")
            else:
                todo.append(i)
        analysed = self.analyze_many([docs[i].get("text") or "" for i in todo])
        # units that are not a verbatim part of their document's text are analysed on their own
        unit_plan: dict[int, list] = {}
        extra_texts: list[str] = []
        for i, found in zip(todo, analysed, strict=True):
            if isinstance(found, Exception):
                results[i] = _error(safe_error(found, docs[i].get("text") or ""))
                continue
            text = docs[i].get("text") or ""
            plan, cursor = [], 0
            for u in docs[i].get("units") or []:
                ut = (u.get("text") if isinstance(u, Mapping) else None) or ""
                pos = text.find(ut, cursor) if ut else 0
                if ut and pos < 0:
                    pos = text.find(ut)
                if pos >= 0:
                    plan.append((u, "span", pos))
                    cursor = pos + len(ut) if ut else cursor
                else:
                    plan.append((u, "extra", len(extra_texts)))
                    extra_texts.append(ut)
            unit_plan[i] = plan
            results[i] = {"findings": found}
        extra = self.analyze_many(extra_texts) if extra_texts else []
        for i, plan in unit_plan.items():
            text = docs[i].get("text") or ""
            found = results[i]["findings"]
            try:
                units = []
                for u, how, where in plan:
                    ut = u.get("text") or ""
                    uf: list[Finding] | Exception
                    if how == "span":
                        uf = [Finding(f.entity_type, max(f.start, where) - where, min(f.end, where + len(ut)) - where,
                                      f.score, f.recognizer)
                              for f in found if f.start < where + len(ut) and f.end > where]
                    else:
                        uf = extra[where]
                        if isinstance(uf, Exception):
                            raise uf
                    units.append({**u, "text": self.anonymize(ut, uf) if ut else ut})
                results[i] = {"status": "ok", "error": None, "redacted_text": self.anonymize(text, found),
                              "units": units, "findings": found}
            except Exception as exc:  # noqa: BLE001 - never passed on unredacted
                results[i] = _error(safe_error(exc, text))
        return results


# Types whose recognizers validate a format or a checksum. A finding of another ("generic") type that
# lies inside one of them is a misreading of the same characters (a phone number inside an IP address,
# a card number or an SSN) and is dropped; the characters stay covered by the specific finding.
SPECIFIC_TYPES = frozenset({"EMAIL_ADDRESS", "IBAN_CODE", "CREDIT_CARD", "IP_ADDRESS", "US_SSN", "CRYPTO",
                            "MAC_ADDRESS", "UUID", "US_ITIN", "US_PASSPORT", "UK_NHS", "MEDICAL_LICENSE"})
MIN_PHONE_DIGITS = 7  # shorter digit runs (postcodes, house numbers) are not reported as phone numbers


def _dedupe(found: list[Finding], text: str | None = None,
            drop_inside: Mapping[str, frozenset] | None = None) -> list[Finding]:
    best: dict[tuple, Finding] = {}
    for f in found:
        k = (f.entity_type, f.start, f.end)
        if k not in best or f.score > best[k].score:
            best[k] = f
    items = sorted(best.values(), key=lambda f: (f.start, f.end, f.entity_type))
    specific = [f for f in items if f.entity_type in SPECIFIC_TYPES]
    outer_types = frozenset().union(*drop_inside.values()) if drop_inside else frozenset()
    outers = [f for f in items if f.entity_type in outer_types]
    out = []
    for f in items:
        if f.entity_type not in SPECIFIC_TYPES and any(
                s.start <= f.start and f.end <= s.end for s in specific):
            continue
        outer = drop_inside.get(f.entity_type) if drop_inside else None
        if outer and any(o.entity_type in outer and o.start <= f.start and f.end <= o.end and o is not f
                         for o in outers):
            continue
        if f.entity_type == "PERSON" and text is not None and any(c.isdigit() for c in text[f.start:f.end]):
            continue  # names hold no digits: "Franscini 71", "Box 9725" are address parts
        if (f.entity_type == "PHONE_NUMBER" and text is not None
                and sum(c.isdigit() for c in text[f.start:f.end]) < MIN_PHONE_DIGITS):
            continue
        out.append(f)
    return out


PROPAGATE_MIN_CHARS = 4


_NAME_PART = re.compile(r"[^\W\d_][^\W\d_'-]*(?:[-'][^\W\d_]+)*")


def _propagate(text: str, found: list[Finding], name_parts: bool = False) -> list[Finding]:
    """Every other occurrence (as a whole word) of a value found in this text gets the same finding:
    NER is context dependent, and a name recognised once must not survive elsewhere in the document.
    With ``name_parts``, the capitalised words of a several-word PERSON finding (given name, surname:
    "Faina D. Yefremova" -> "Faina", "Yefremova") are propagated too."""
    values: dict[str, Finding] = {}
    for f in found:
        v = text[f.start:f.end]
        if len(v.strip()) >= PROPAGATE_MIN_CHARS and (v not in values or f.score > values[v].score):
            values[v] = f
    if name_parts:
        for f in found:
            if f.entity_type != "PERSON":
                continue
            parts = _NAME_PART.findall(text[f.start:f.end])
            if len(parts) < 2:
                continue
            for p in parts:
                if len(p) >= 3 and p[0].isupper() and not p.isupper() and p not in values:
                    values[p] = f
    if not values:
        return []
    covered = sorted((f.start, f.end) for f in found)
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
                         + r")(?!\w)")
    import bisect

    starts = [c[0] for c in covered]
    reach, best = [], -1  # reach[k]: furthest end of the findings covered[0..k]
    for _, ce in covered:
        best = max(best, ce)
        reach.append(best)
    out = []
    for m in pattern.finditer(text):
        s, e = m.span()
        k = bisect.bisect_right(starts, s)
        if k and reach[k - 1] >= e:  # already inside a finding that starts at or before s
            continue
        src = values[m.group(0)]
        out.append(Finding(src.entity_type, s, e, src.score, "propagated:" + src.recognizer))
    return out


def _error(message: str) -> dict:
    return {"status": "redaction_error", "error": message, "redacted_text": None, "units": None, "findings": []}


def safe_error(exc: BaseException, text: str, limit: int = 300) -> str:
    """``Type: message`` for the table — withheld when the message quotes the document's text."""
    msg = " ".join(str(exc).split())[:limit]
    if text and len(msg) >= 8 and any(msg[i:i + 8] in text for i in range(len(msg) - 7)):
        msg = "(message withheld: it quotes the document)"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# -- per-worker cache -----------------------------------------------------------------------------------

_ENGINES: dict[str, PiiEngine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(settings: Mapping, hash_key: str | None = None) -> PiiEngine:
    """The engine for these settings, built on first use in this Python process and then reused."""
    fp = config_hash(settings, hash_key) + json.dumps([settings.get(k) for k in _NOT_HASHED[:-1]], default=str)
    eng = _ENGINES.get(fp)
    if eng is None:
        with _ENGINES_LOCK:
            eng = _ENGINES.get(fp)
            if eng is None:
                eng = PiiEngine(settings, hash_key)
                _ENGINES[fp] = eng
    return eng
