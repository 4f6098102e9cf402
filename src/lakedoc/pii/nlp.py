"""The NLP engine (spaCy, or transformers NER with spaCy tokens) that Presidio's analyzer runs on.

Configured explicitly: Presidio's default ``AnalyzerEngine()`` would try to download ``en_core_web_lg``;
here a model that is not installed is a clear :class:`ConfigError`, never a download.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine, TransformersNlpEngine

from lakedoc.config_schema import ConfigError, PiiSettings
from lakedoc.pii.patches import lemma_fallback


def check_spacy_model(name: str) -> None:
    import spacy

    if not (spacy.util.is_package(name) or Path(name).exists()):
        raise ConfigError(
            f"spaCy model {name!r} (pii.spacy_models) is not installed and lakedoc never downloads models "
            f"at run time: install its wheel (pip install <wheel>, or a cluster/volume library on "
            f"Databricks) or point pii.spacy_models at a model folder"
        )


def build_nlp_engine(settings: PiiSettings) -> SpacyNlpEngine:
    """Loaded NLP engine of ``pii.languages``: the pipes of ``pii.spacy_disable`` off, ``max_length``
    above ``pii.chunk_chars``, and the :func:`~lakedoc.pii.patches.lemma_fallback` patch applied."""
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
        nlp.max_length = max(nlp.max_length, settings.chunk_chars + 1)
    lemma_fallback(engine)
    return engine
