"""The four places where lakedoc changes Presidio's (and spaCy's) behaviour from the outside. Each is isolated here,
applied by :class:`lakedoc.pii.engine.PiiEngine` only, and guarded by a test in
``tests/test_pii_engine.py`` that fails when Presidio changes the patched behaviour (then the patch
either can go or must be revisited). Written against presidio-analyzer 2.2.366.

1. :func:`offline_tldextract` — **network access and a cache folder at run time.** Presidio's
   ``EmailRecognizer.validate_result`` calls the module-level ``tldextract.extract``, whose default
   extractor fetches the Public Suffix List over the network on first use and caches it under the home
   folder (on a worker without internet: a wait for the fetch, a logged error, then its snapshot
   anyway). The patch points that module's ``tldextract`` name at an extractor that uses
   only the snapshot bundled in the tldextract wheel. *When it can go:* Presidio lets the caller pass
   an extractor (or stops using tldextract): ``test_patch_offline_tldextract_still_needed`` fails then.

2. :func:`lemma_fallback` — **context words without a lemmatizer.** lakedoc switches spaCy's
   lemmatizer (and the attribute ruler it needs) off for speed (``pii.spacy_disable``); tokens then
   have an empty ``lemma_``, and the private ``SpacyNlpEngine._doc_to_nlp_artifact`` copies those empty
   lemmas into the artifacts, so Presidio's context enhancer (which reads lemmas) would never match a
   context word ("phone", "card") and context-boosted findings would be lost. The patch wraps that
   method **on one engine instance** (the class stays untouched) and fills empty lemmas with the
   lower-case word; the enhancer matches context words as substrings, so "phones" still holds
   "phone". *When it can go:* Presidio falls back to the text itself, or the method is renamed or
   changes signature: ``test_patch_lemma_fallback_still_needed`` fails then.

3. :func:`lazy_hf_pipeline` — **start-up cost of a model lakedoc never loads.** Importing
   ``presidio_analyzer`` runs ``from transformers import pipeline`` in two modules (its Hugging Face
   NER recognizer and token pipe). transformers resolves that name by importing
   ``transformers.pipelines``, which imports every pipeline's processing code: ~3.3 s of CPU in each
   fresh Python worker (measured), although lakedoc's NER is spaCy only. For the duration of that one
   import, ``transformers.pipeline`` is a function that imports and calls the real one when called, so
   Presidio's Hugging Face classes still work if used; afterwards transformers is as before. Applied
   before Presidio's first import in a process. *When it can go:* Presidio imports transformers
   lazily: ``test_patch_lazy_hf_pipeline_still_needed`` fails then. When transformers is not imported yet,
   it is not imported at all (a stand-in module answers Presidio's one ``from transformers import
   pipeline`` and is removed afterwards): ~0.6-0.9 s more per worker.

4. :func:`torch_blocked` — **torch loaded for a model that does not use it.** spaCy imports thinc, and
   thinc imports torch when it is installed (for its PyTorch layers): ~1.5 s of CPU per fresh worker,
   although ``en_core_web_sm`` (and any pipeline without a transformer) runs on numpy. While the PII
   engine is built with only such pipelines (:func:`torch_free_pipeline` reads each model's
   ``meta.json``) and no transformers NER model, ``import torch`` fails, so thinc records "no torch";
   afterwards torch imports normally again (the encoder of a later task in the same worker is
   unaffected). The process's thinc then has no PyTorch layers: a transformer spaCy pipeline needs a
   process where torch was imported first (it is then never blocked). *When it can go:* thinc imports
   torch lazily: ``test_patch_torch_blocked_still_needed`` fails then.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_TLDEXTRACT_MARKER = "_lakedoc_offline"


def offline_tldextract() -> None:
    """Point the e-mail recognizer's tldextract at the bundled suffix-list snapshot (no fetch, no cache).
    Process-wide and idempotent (a marker on the patched Presidio module)."""
    import tldextract
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    if getattr(email_recognizer, _TLDEXTRACT_MARKER, False):
        return
    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    # Presidio's module global ``tldextract`` becomes a stand-in that has only ``.extract``
    email_recognizer.tldextract = types.SimpleNamespace(extract=extractor)  # type: ignore[assignment]  # a stand-in, not a module
    setattr(email_recognizer, _TLDEXTRACT_MARKER, True)


def lemma_fallback(engine: Any) -> None:
    """Wrap ``engine._doc_to_nlp_artifact`` (a ``SpacyNlpEngine`` instance; Presidio private method) so
    that tokens without a lemma get their lower-case text as lemma, and the keywords are rebuilt."""
    orig = engine._doc_to_nlp_artifact

    def to_artifact(doc, language):
        art = orig(doc, language)
        if art.lemmas and not all(art.lemmas):
            art.lemmas = [lem or tok.lower_ for lem, tok in zip(art.lemmas, doc, strict=False)]
            art.keywords = art.set_keywords(engine, art.lemmas, language)
        return art

    engine._doc_to_nlp_artifact = to_artifact


def lazy_hf_pipeline() -> None:
    """Import Presidio with ``transformers.pipeline`` bound to a lazy stand-in (see the module docstring).
    Does nothing when Presidio is already imported or transformers' pipelines are loaded. When
    transformers itself is not imported yet, it stays unimported: a stand-in module named
    ``transformers`` that has only ``pipeline`` answers Presidio's import and is removed right after."""
    if "presidio_analyzer" in sys.modules or "transformers.pipelines" in sys.modules:
        return

    def pipeline(*args, **kwargs):
        from transformers.pipelines import pipeline as hf_pipeline

        return hf_pipeline(*args, **kwargs)

    pipeline._lakedoc_lazy = True  # type: ignore[attr-defined]  # a marker the still-needed test reads
    real = sys.modules.get("transformers")
    if real is None and importlib.util.find_spec("transformers") is None:
        return  # not installed: Presidio's own ImportError fallback applies
    # transformers imported: its module gets the attribute for this import; not imported: a stand-in
    # module that has only ``pipeline`` (the one name Presidio imports from it) takes its place
    holder = real if real is not None else types.ModuleType("transformers")
    holder.pipeline = pipeline  # type: ignore[attr-defined]  # this import only; removed below
    if real is None:
        sys.modules["transformers"] = holder
    try:
        import presidio_analyzer  # noqa: F401 - the import this patch is for
        import presidio_anonymizer  # noqa: F401
    finally:
        if real is not None:
            del real.pipeline  # back to transformers' own lazy attribute
        elif sys.modules.get("transformers") is holder:
            del sys.modules["transformers"]  # the next import of transformers is the real one


# requirements of a spaCy pipeline package that run its model on torch
_TORCH_REQUIREMENTS = frozenset({"spacy-transformers", "spacy-curated-transformers", "spacy-llm", "torch"})


def torch_free_pipeline(model: str) -> bool:
    """True when the installed spaCy pipeline ``model`` (a package name or a folder) declares no
    torch-based requirement in its ``meta.json`` (``en_core_web_sm``: yes; any ``*_trf``: no).
    Unknown (no meta.json found): False."""
    import json

    path = Path(model)
    if not path.is_dir():
        try:
            spec = importlib.util.find_spec(model)
        except (ImportError, ValueError):
            return False
        if spec is None or not spec.submodule_search_locations:
            return False
        path = Path(next(iter(spec.submodule_search_locations)))
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = {re.split(r"[<>=!~;\[ ]", str(r), maxsplit=1)[0].strip().lower().replace("_", "-")
             for r in meta.get("requirements") or []}
    return not (names & _TORCH_REQUIREMENTS) and not any(
        "transformer" in str(p) for p in meta.get("pipeline") or [])


@contextmanager
def torch_blocked(active: bool) -> Iterator[None]:
    """Patch 4: for the ``with`` block, ``import torch`` fails (``sys.modules["torch"] = None``), unless
    torch or thinc is imported already. Afterwards torch imports normally again."""
    if not active or "torch" in sys.modules or "thinc" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # the import system's "not importable" mark
    try:
        yield
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]
