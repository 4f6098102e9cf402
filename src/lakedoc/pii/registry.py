"""The recognizer registry of one configuration: Presidio's predefined recognizers for the NLP
engine, with its phone recognizer replaced by :class:`WindowedPhoneRecognizer` (``pii.phone_regions``),
plus the configured regex recognizers (``pii.recognizers``), deny lists and the first-name gazetteer."""
from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngine

from lakedoc.config_schema import PiiSettings
from lakedoc.pii.names import gazetteer_settings
from lakedoc.pii.recognizers import NameGazetteerRecognizer, WindowedPhoneRecognizer


def build_registry(settings: PiiSettings, nlp_engine: NlpEngine) -> RecognizerRegistry:
    languages = list(settings.languages)
    registry = RecognizerRegistry(supported_languages=languages)
    registry.load_predefined_recognizers(languages=languages, nlp_engine=nlp_engine)
    regions = settings.phone_regions
    gaz = gazetteer_settings(settings.name_gazetteer)
    pipelines = getattr(nlp_engine, "nlp", None) or {}  # lang -> spaCy Language (SpacyNlpEngine)
    for lang in languages:
        if regions:
            registry.remove_recognizer("PhoneRecognizer", language=lang)
            registry.add_recognizer(WindowedPhoneRecognizer(
                supported_language=lang, supported_regions=regions,
                leniency=settings.phone_leniency))
        for rec in settings.recognizers:
            if rec.get("languages") and lang not in rec["languages"]:
                continue
            registry.add_recognizer(PatternRecognizer(
                supported_entity=rec["entity"], name=rec["name"], supported_language=lang,
                patterns=[Pattern(p.get("name", rec["name"]), p["regex"], float(p.get("score", 0.5)))
                          for p in rec["patterns"]],
                # presidio annotates `context: List[str] = None` (an implicit Optional)
                context=rec.get("context") or None))  # type: ignore[arg-type]  # see the line above
        for ent, terms in settings.deny_list.items():
            registry.add_recognizer(PatternRecognizer(supported_entity=ent, name=f"deny_list_{ent}",
                                                      supported_language=lang, deny_list=list(terms)))
        if gaz.enabled and (not gaz.languages or lang in gaz.languages):
            registry.add_recognizer(NameGazetteerRecognizer.from_settings(gaz, lang, pipelines.get(lang)))
    return registry
