"""The NLP engine (spaCy, or transformers NER with spaCy tokens) that Presidio's analyzer runs on.

Configured explicitly: Presidio's default ``AnalyzerEngine()`` would try to download ``en_core_web_lg``;
here a model that is not installed is a clear :class:`ConfigError`, never a download.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine, TransformersNlpEngine

from lakedoc.config_schema import ConfigError, PiiSettings
from lakedoc.pii.patches import lemma_fallback
from lakedoc.pii.tagging import drop_unused_tok2vec


def check_spacy_model(name: str) -> None:
    import spacy

    if not (spacy.util.is_package(name) or Path(name).exists()):
        raise ConfigError(
            f"spaCy model {name!r} (pii.spacy_models) is not installed and lakedoc never downloads models "
            f"at run time: install its wheel (pip install <wheel>, or a cluster/volume library on "
            f"Databricks) or point pii.spacy_models at a model folder"
        )


# One loaded NLP engine per model set and process: PII engines that differ only in operators, entities,
# thresholds or chunk size (a test session, a worker that sees two configurations) share the spaCy
# pipelines instead of loading them again (~50 MB each, kept for the life of a reused Python worker).
_NLP: dict[tuple, SpacyNlpEngine] = {}
_NLP_LOCK = threading.Lock()


def nlp_key(settings: PiiSettings) -> tuple:
    """What decides the loaded pipelines: the models of the configured languages, the transformers
    NER model and the disabled pipes (``chunk_chars`` only raises ``max_length``)."""
    return (tuple((lang, settings.spacy_models[lang]) for lang in settings.languages),
            settings.transformers_model, tuple(settings.spacy_disable))


def build_nlp_engine(settings: PiiSettings) -> SpacyNlpEngine:
    """Loaded NLP engine of ``pii.languages``: the pipes of ``pii.spacy_disable`` off (and a ``tok2vec``
    that then feeds no enabled pipe, :func:`~lakedoc.pii.tagging.drop_unused_tok2vec`), ``max_length``
    above ``pii.chunk_chars``, and the :func:`~lakedoc.pii.patches.lemma_fallback` patch applied.
    Loaded once per process and :func:`nlp_key`, then shared."""
    key = nlp_key(settings)
    with _NLP_LOCK:
        engine = _NLP.get(key)
        if engine is None:
            engine = _NLP[key] = _load_nlp_engine(settings)
        loaded: dict[str, Any] = engine.nlp or {}  # lang -> spaCy Language
        for nlp in loaded.values():
            nlp.max_length = max(nlp.max_length, settings.chunk_chars + 1)
    return engine


def _load_nlp_engine(settings: PiiSettings) -> SpacyNlpEngine:
    engine: SpacyNlpEngine  # TransformersNlpEngine is a SpacyNlpEngine
    ner_conf = NerModelConfiguration()  # Presidio's defaults (labels_to_ignore, entity mapping)
    models: list[dict[str, Any]] = []
    for lang in settings.languages:
        check_spacy_model(settings.spacy_models[lang])
    if settings.transformers_model:
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:  # pragma: no cover
            pass
        for lang in settings.languages:
            models.append({"lang_code": lang, "model_name": {"spacy": settings.spacy_models[lang],
                                                             "transformers": settings.transformers_model}})
        engine = TransformersNlpEngine(models=models, ner_model_configuration=ner_conf)
    else:
        for lang in settings.languages:
            models.append({"lang_code": lang, "model_name": settings.spacy_models[lang]})
        engine = SpacyNlpEngine(models=models, ner_model_configuration=ner_conf)
    engine.load()
    exclude = settings.spacy_disable
    pipelines: dict[str, Any] = engine.nlp or {}  # lang -> spaCy Language
    for nlp in pipelines.values():
        for comp in exclude:
            if comp in nlp.pipe_names:
                nlp.disable_pipe(comp)
        drop_unused_tok2vec(nlp)  # with tagger and parser off, tok2vec feeds nothing (NER has its own)
        nlp.max_length = max(nlp.max_length, settings.chunk_chars + 1)
    lemma_fallback(engine)
    return engine
