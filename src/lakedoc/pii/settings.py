"""The ``pii`` configuration section: checks beyond the schema's types, and its fingerprint.

* :func:`load_settings` reads the typed section (:class:`lakedoc.config_schema.PiiSettings`, where
  every default is defined) and checks it beyond its types (operators, thresholds, recognizers...)
  into a plain, picklable dict holding every key, which travels to the Spark workers inside the
  ``mapInPandas`` closure; :func:`pii_settings` gives the model back on the worker.
* :func:`config_hash` fingerprints everything that decides the redacted output (the settings without
  the throughput knobs, model and Presidio versions, :data:`REDACTOR_VERSION`, a keyed digest of the
  hash key): the ``config_hash`` column of ``documents_redacted``, which decides what is redone.

Nothing here imports Presidio: the driver plans with these functions alone.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lakedoc.config_schema import ConfigError, PiiSettings

# Bump when the redaction logic changes in a way that changes output for the same configuration.
REDACTOR_VERSION = "2"
OPERATORS = ("replace", "mask", "redact", "hash")
# Settings that do not change the output stay out of the configuration hash: the throughput knobs,
# and the hash key's secret *reference* (the key itself enters as a keyed digest, see config_hash).
THROUGHPUT_KEYS = ("batch_size", "docs_per_round", "partitions_per_slot")
NOT_HASHED = frozenset({*THROUGHPUT_KEYS, "hash_key"})
# spaCy pipes that give the same findings whether or not the NLP pass runs them: without the tagger
# the name gazetteer tags its tokens on demand, with the same tags (lakedoc.pii.tagging)
OUTPUT_NEUTRAL_PIPES = frozenset({"tagger"})
_RECOGNIZER_KEYS = ("name", "entity", "patterns", "context", "languages")


def _entity_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
        raise ConfigError(f"'{key}': entity types are UPPER_CASE names such as PERSON, got {value!r}")
    return value


def _is_score(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= 1


def pii_settings(section: Any) -> PiiSettings:
    """The ``pii`` section as its model, defaults filled: from ``cfg.pii``, ``cfg["pii"]``, a settings
    dict of :func:`load_settings`, or a whole configuration (:meth:`PiiSettings.from_config`)."""
    try:
        return PiiSettings.from_config(section)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"'pii.{where}': {err['msg']}, got {err.get('input')!r}") from None


def load_settings(section: Any) -> dict:
    """Check the ``pii`` section (``cfg.pii``, ``cfg["pii"]`` or the whole configuration) beyond what
    the schema's types say; return a plain dict of every key (defaults from :class:`PiiSettings`)."""
    s = pii_settings(section).model_dump(mode="json")  # a deep, picklable copy
    langs = s["languages"]
    if not langs or not all(isinstance(x, str) for x in langs):
        raise ConfigError("'pii.languages' must list at least one language code, e.g. [en]")
    for lang in langs:
        if lang not in s["spacy_models"]:
            raise ConfigError(f"'pii.spacy_models' has no model for language {lang!r} (pii.languages); "
                              f"configured: {sorted(s['spacy_models'])}")
    s["entities"] = [_entity_name("pii.entities", e) for e in s["entities"]]
    for ent, thr in s["entity_thresholds"].items():
        _entity_name("pii.entity_thresholds", ent)
        if not _is_score(thr):
            raise ConfigError(f"'pii.entity_thresholds.{ent}' must be a score between 0 and 1, got {thr!r}")
    ops = s["operators"]
    for ent, op in ops.items():
        if ent != "DEFAULT":
            _entity_name("pii.operators", ent)
        if op not in OPERATORS:
            raise ConfigError(f"'pii.operators.{ent}' has value {op!r}; allowed values: {', '.join(OPERATORS)}")
    ops.setdefault("DEFAULT", PiiSettings().operators["DEFAULT"])
    for ent, terms in s["deny_list"].items():
        _entity_name("pii.deny_list", ent)
        if not isinstance(terms, list) or not all(isinstance(t, str) and t for t in terms):
            raise ConfigError(f"'pii.deny_list.{ent}' must be a list of non-empty strings")
    if len(s["mask_char"]) != 1:
        raise ConfigError(f"'pii.mask_char' must be one character, got {s['mask_char']!r}")
    if not all(isinstance(t, str) for t in s["allow_list"]):
        raise ConfigError("'pii.allow_list' must be a list of strings")
    for i, rec in enumerate(s["recognizers"]):
        _check_recognizer(f"pii.recognizers[{i}]", rec)
    for region in s["phone_regions"]:
        if not isinstance(region, str) or not re.fullmatch(r"[A-Z]{2}", region):
            raise ConfigError(f"'pii.phone_regions' holds {region!r}: regions are two-letter codes such as "
                              f"US or GB (quote \"NO\" in YAML: unquoted it reads as false)")
    if "hash" in ops.values() and not s["hash_key"]:
        raise ConfigError("'pii.hash_key' (a secret reference) is required when an operator is 'hash'")
    from lakedoc.pii.names import check_settings

    s["name_gazetteer"] = check_settings(s["name_gazetteer"])
    for ent, outer in s["drop_inside"].items():
        _entity_name("pii.drop_inside", ent)
        if not isinstance(outer, list) or not outer:
            raise ConfigError(f"'pii.drop_inside.{ent}' must list the entity types it is dropped inside of")
        for o in outer:
            _entity_name(f"pii.drop_inside.{ent}", o)
    return s


def _check_recognizer(where: str, rec: Any) -> None:
    """One ``pii.recognizers`` entry: ``{name, entity, patterns: [{name, regex, score}], context, languages}``."""
    if not isinstance(rec, dict) or not rec.get("name") or not rec.get("entity") or not rec.get("patterns"):
        raise ConfigError(f"'{where}' needs name, entity and patterns (a list of {{name, regex, score}})")
    unknown = set(rec) - set(_RECOGNIZER_KEYS)
    if unknown:
        raise ConfigError(f"'{where}' has unknown key(s) {sorted(unknown)}; allowed: {', '.join(_RECOGNIZER_KEYS)}")
    _entity_name(f"{where}.entity", rec["entity"])
    for j, p in enumerate(rec["patterns"]):
        if not isinstance(p, dict) or "regex" not in p:
            raise ConfigError(f"'{where}.patterns[{j}]' needs a regex (and a score)")
        try:  # Presidio compiles patterns with the ``regex`` module (variable-width look-behind)
            import regex

            regex.compile(p["regex"], regex.DOTALL | regex.MULTILINE | regex.IGNORECASE)
        except regex.error as exc:
            raise ConfigError(f"'{where}.patterns[{j}].regex' is not a valid regular expression: {exc}") from exc
        if not _is_score(p.get("score", 0.5)):
            raise ConfigError(f"'{where}.patterns[{j}].score' must be between 0 and 1")


def uses_hash(settings: Mapping) -> bool:
    return "hash" in settings["operators"].values()


def resolve_hash_key(settings: Mapping) -> str | None:
    """The keyed-hash secret (only when an operator is ``hash``): environment first, then the scope."""
    if not uses_hash(settings):
        return None
    from lakedoc.secrets import resolve_secret

    return resolve_secret(settings["hash_key"], required=True)


def _model_versions(settings: Mapping) -> dict:
    """The installed versions of the spaCy models ("path" for a folder) and of Presidio. Read from the
    package metadata as ``spacy.util.get_package_version`` does, without importing spaCy (which would
    import torch before :func:`lakedoc.pii.patches.torch_blocked` can keep it out)."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    if importlib.util.find_spec("spacy") is not None:
        for _lang, name in sorted(settings["spacy_models"].items()):
            try:
                out[name] = version(name) or "path"
            except (PackageNotFoundError, ValueError, OSError):  # a model given as a folder
                out[name] = "path"
    try:
        out["presidio_analyzer"] = version("presidio_analyzer")
        out["presidio_anonymizer"] = version("presidio_anonymizer")
    except Exception:  # noqa: BLE001 - versions are informative only; a missing one is left out
        pass
    return out


def config_hash(settings: Mapping, hash_key: str | None = None) -> str:
    """Fingerprint of everything that decides the redacted output: the ``pii`` settings, model and
    Presidio versions, :data:`REDACTOR_VERSION` and (when hashing) a keyed digest of the key itself, so
    rotating the key re-redacts without the key ever being stored."""
    payload = {k: v for k, v in sorted(settings.items()) if k not in NOT_HASHED}
    if isinstance(payload.get("spacy_disable"), list):
        payload["spacy_disable"] = [p for p in payload["spacy_disable"] if p not in OUTPUT_NEUTRAL_PIPES]
    payload["_versions"] = _model_versions(settings)
    payload["_redactor"] = REDACTOR_VERSION
    if hash_key:
        payload["_key"] = hmac.new(hash_key.encode(), b"lakedoc-pii-key-id", hashlib.sha256).hexdigest()[:16]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
