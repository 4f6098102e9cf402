"""The Presidio engine: configuration checks, long-text chunking, operators, offline behaviour, and the
patches on Presidio (each test fails when Presidio changes the patched behaviour)."""
from __future__ import annotations

import pytest

from conftest import ROOT
from lakedoc.config import ConfigError, load_config
from lakedoc.pii import engine as E, settings as S
from lakedoc.pii.postprocess import MIN_PHONE_DIGITS
from lakedoc.pii.redaction import safe_error
from lakedoc.pii.splitting import split_text


def settings(*sets):
    return S.load_settings(load_config("local", conf_dir=ROOT / "conf", environ={}, sets=list(sets)).pii)


@pytest.fixture(scope="module")
def eng():
    return E.get_engine(settings())


@pytest.mark.parametrize("override, needle", [
    ("pii.operators={PERSON: shred}", "'pii.operators.PERSON' has value 'shred'"),
    ("pii.entity_thresholds={PERSON: 2}", "'pii.entity_thresholds.PERSON' must be a score"),
    ("pii.phone_regions=[US, NO]", "quote \"NO\""),
    ("pii.languages=[en, de]", "'pii.spacy_models' has no model for language 'de'"),
    ("pii.recognizers=[{name: x, entity: X, patterns: [{regex: '([a-z'}]}]", "not a valid regular expression"),
    ("pii.entities=[person]", "UPPER_CASE"),
    ("pii.mask_char='##'", "'pii.mask_char' must be one character"),
    ("pii.operators={DEFAULT: hash}", None),  # valid: hash_key has a default reference
])
def test_settings_are_checked(override, needle):
    if needle is None:
        settings(override)
        return
    with pytest.raises(ConfigError) as exc:
        settings(override)
    assert needle in str(exc.value)


def test_hash_key_missing_is_an_error_not_a_fallback(monkeypatch):
    from lakedoc.secrets import SecretNotFound

    monkeypatch.delenv("LAKEDOC_PII_HASH_KEY", raising=False)
    s = settings("pii.operators={DEFAULT: hash}", "pii.hash_key={env: LAKEDOC_TEST_NO_SUCH_KEY}")
    with pytest.raises(SecretNotFound):
        S.resolve_hash_key(s)
    assert S.resolve_hash_key(settings()) is None  # no hash operator: no key needed


def test_missing_model_is_never_downloaded():
    with pytest.raises(ConfigError, match="never downloads"):
        E.PiiEngine(settings("pii.spacy_models={en: en_core_web_no_such_model}"))


def test_split_text_boundaries_and_coverage():
    paras = ["Paragraph %d. " % i + "word " * 50 for i in range(30)]
    text = "\n\n".join(paras)
    spans = split_text(text, 1000)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, nothing lost
    assert all(e - s <= 1000 for s, e in spans)
    assert all(text[e - 2:e] == "\n\n" for _, e in spans[:-1])  # cut on paragraph boundaries
    assert split_text("x" * 2500, 1000) == [(0, 1000), (1000, 2000), (2000, 2500)]  # no boundary: hard cut


def test_long_text_offsets_map_back(eng):
    block = "Shipping report for the week. " * 30
    text = "\n\n".join(f"{block}Contact person{i}@example.com or IBAN DE89370400440532013000." for i in range(60))
    assert len(text) > 3 * eng.chunk_chars / 20  # several chunks with chunk_chars=1000 below
    small = E.PiiEngine({**eng.settings, "chunk_chars": 1000})
    found = small.analyze(text)
    emails = [f for f in found if f.entity_type == "EMAIL_ADDRESS"]
    assert len(emails) == 60
    assert all(text[f.start:f.end] == f"person{i}@example.com" for i, f in enumerate(emails))
    assert sum(f.entity_type == "IBAN_CODE" for f in found) == 60
    red = small.anonymize(text, found)
    assert "@example.com" not in red and "DE89370400440532013000" not in red
    assert red.count("<EMAIL_ADDRESS>") == 60


def test_operators_and_keyed_hash():
    s = settings("pii.operators={DEFAULT: replace, EMAIL_ADDRESS: mask, IBAN_CODE: redact, PERSON: hash}")
    e1 = E.PiiEngine(s, hash_key="k1" * 16)
    e2 = E.PiiEngine(s, hash_key="k2" * 16)
    t1 = "Maria Gonzalez wrote to ops@example.com: pay IBAN DE89370400440532013000 now."
    t2 = "Yesterday Maria Gonzalez called."
    r1 = e1.anonymize(t1, e1.analyze(t1))
    r2 = e1.anonymize(t2, e1.analyze(t2))
    assert "*" * len("ops@example.com") in r1 and "DE89" not in r1 and "<IBAN_CODE>" not in r1
    tok = [w for w in r1.split() if w.startswith("<PERSON_")][0]
    assert tok in r2  # same value -> same token across documents
    r3 = e2.anonymize(t2, e2.analyze(t2))
    assert tok not in r3 and "<PERSON_" in r3  # another key -> another token
    assert S.config_hash(s, "k1" * 16) != S.config_hash(s, "k2" * 16)
    assert "k1" not in S.config_hash(s, "k1" * 16)


def test_allow_and_deny_lists():
    s = settings("pii.allow_list=[Maria Gonzalez]", "pii.deny_list={PROJECT: [Bluebird]}")
    e = E.PiiEngine(s)
    t = "Maria Gonzalez leads project Bluebird with Peter Jackson."
    red = e.anonymize(t, e.analyze(t))
    assert "Maria Gonzalez" in red and "<PROJECT>" in red and "Peter Jackson" not in red


def test_propagation_redacts_every_occurrence(eng):
    t = "Loading complete at Santos. Dear Marcus Bennett, the ship left Santos. Marcus Bennett signed."
    red = eng.anonymize(t, eng.analyze(t))
    assert "Santos" not in red and "Marcus" not in red


def test_offline_and_quiet(eng, caplog, monkeypatch):
    import socket

    def no_network(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with caplog.at_level("WARNING"):
        found = eng.analyze("Write to someone@sub.example.co.uk today.")
    assert [f.entity_type for f in found] == ["EMAIL_ADDRESS"]
    assert "Traceback" not in caplog.text


def test_one_bad_text_fails_alone(eng):
    docs = [{"text": "Call Maria Gonzalez at (212) 555-0198.", "units": []},
            {"text": "y" * 5000, "units": []}]
    res = eng.redact_documents(docs, max_chars=1000)
    assert res[0].ok and "Gonzalez" not in (res[0].redacted_text or "")
    assert res[1].status == "redaction_error" and res[1].redacted_text is None and not res[1].findings


def test_safe_error_withholds_quoted_text():
    text = "secret name Maria Gonzalez in here"
    assert "withheld" in safe_error(ValueError("cannot parse 'Maria Gonzalez in'"), text)
    assert safe_error(ValueError("bad input"), text) == "ValueError: bad input"


# -- PERSON recall: gazetteer, name contexts, name parts; phone windows -----------------------------------

def _spans(e, text, etype="PERSON"):
    return [text[f.start:f.end] for f in e.analyze(text) if f.entity_type == etype]


def test_name_gazetteer_finds_names_the_small_model_misses(eng):
    without = E.PiiEngine({**eng.settings, "name_gazetteer": {"enabled": False}})
    text = "Tomomi Nishiyama lives at 86036 Rua do Arenque. Kids & Family. Directed By: Sari J. Paavolainen"
    assert "Tomomi Nishiyama" not in _spans(without, text)  # the seed's miss
    found = _spans(eng, text)
    assert "Tomomi Nishiyama" in found and "Sari J. Paavolainen" in found
    # lower-case text: a first name followed by a word that is no English word
    assert _spans(eng, "please follow up with patricia desrosiers in a couple of months.") == ["patricia desrosiers"]


def test_name_gazetteer_leaves_words_streets_and_firms_alone(eng):
    for text in ["Will you send the report to the board tomorrow?",
                 "The warehouse on Devon Street ships grain to Morgan Stanley Investments.",
                 "Deliveries to 22 Talga Court, Kimberly Way, were late."]:
        assert not [f for f in eng.analyze(text) if f.recognizer == "NameGazetteerRecognizer"], text
    red = eng.anonymize(t := "Ship to 14 Victor Hugo Street, please.", eng.analyze(t))
    assert "<PERSON>" not in red and "Victor Hugo" not in red  # inside the address: an address finding


def test_name_contexts_and_name_parts(eng):
    assert _spans(eng, "My name is Rubija") == ["Rubija"]
    assert _spans(eng, "Her maiden name is nyberg") == ["nyberg"]
    assert _spans(eng, "I'd like to join accounts with ms. Quinzia") == ["Quinzia"]
    text = "They sang the verses from Faina D. Yefremova's Cautionary Tales, the best of early Yefremova."
    red = eng.anonymize(text, eng.analyze(text))
    assert "Yefremova" not in red and "Faina" not in red


@pytest.mark.parametrize("override, needle", [
    # the types and bounds are NameGazetteerSettings' (lakedoc.config_schema), the message names the key
    ("pii.name_gazetteer={enabled: true, sources: [phonebook]}",
     "'pii.name_gazetteer.sources.0': Input should be 'gender_guesser'"),
    ("pii.name_gazetteer={enabled: true, sources: []}", "at least one source"),
    ("pii.name_gazetteer={enabled: true, sources: [gender_guesser], colour: red}",
     "'pii.name_gazetteer.colour': Extra inputs are not permitted"),
    ("pii.name_gazetteer={enabled: true, sources: [gender_guesser], score_full: 3}",
     "'pii.name_gazetteer.score_full': Input should be less than or equal to 1"),
    ("pii.name_gazetteer={score_single: true}", "'pii.name_gazetteer.score_single': Input should be a valid number"),
    ("pii.name_gazetteer={min_chars: 2.5}", "'pii.name_gazetteer.min_chars': Input should be a valid integer"),
    ("pii.drop_inside={PERSON: street}", "must list"),
])
def test_gazetteer_settings_are_checked(override, needle):
    with pytest.raises(ConfigError) as exc:
        settings(override)
    assert needle in str(exc.value)


def test_phone_windows_skip_texts_without_a_number_and_lose_nothing(eng):
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from lakedoc.pii.recognizers import WindowedPhoneRecognizer, phone_windows

    assert phone_windows("Born 1968, zip 12345, room 101, no phone here.") == []
    assert phone_windows("IBAN DE89370400440532013000", skip_glued=True) == []
    text = ("Grain report. Call (212) 555-0137 or +44 20 7946 0958 today; wire the fee to IBAN "
            "DE89370400440532013000; card 4111 1111 1111 1111; desk 0699 868 88 55. ") * 3
    regions = eng.settings["phone_regions"]
    plain = PhoneRecognizer(supported_regions=regions, leniency=1)
    windowed = WindowedPhoneRecognizer(supported_regions=regions, leniency=1)
    keep = lambda rs: sorted((r.start, r.end) for r in rs  # noqa: E731
                             if sum(c.isdigit() for c in text[r.start:r.end]) >= MIN_PHONE_DIGITS)
    assert keep(windowed.analyze(text, ["PHONE_NUMBER"])) == keep(plain.analyze(text, ["PHONE_NUMBER"]))
    assert keep(windowed.analyze(text, ["PHONE_NUMBER"]))


def test_context_words_work_without_the_lemmatizer(eng):
    assert "lemmatizer" in eng.settings["spacy_disable"]
    found = eng.analyze("Her desk number is 781 1704, the card on file 4000 1234 5678 9010.")
    assert {f.entity_type for f in found} >= {"PHONE_NUMBER", "CREDIT_CARD"}


def test_engine_cache_key_names_what_tells_engines_apart(eng):
    s = eng.settings
    key = E.EngineKey.of(s)
    assert E.get_engine(s) is eng  # built once per process
    assert E.EngineKey.of({**s, "docs_per_round": 1, "partitions_per_slot": 9}) == key  # stage knobs only
    assert E.EngineKey.of({**s, "batch_size": s["batch_size"] + 1}) != key  # the engine's NLP batch size
    assert E.EngineKey.of({**s, "score_threshold": 0.9}) != key  # output settings
    assert E.EngineKey.of(s, "k1" * 16) != E.EngineKey.of(s, "k2" * 16)  # the hash key (as a keyed digest)
    assert "k1" not in repr(E.EngineKey.of(s, "k1" * 16))


# -- the patches on Presidio (lakedoc.pii.patches): still needed, still applied ---------------------------

def test_patch_offline_tldextract_still_needed(eng):
    import inspect

    import tldextract
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    # Presidio validates e-mail domains through its module global ``tldextract.extract`` (what is patched);
    # when this fails, Presidio changed how it calls tldextract: revisit or drop offline_tldextract
    assert "tldextract.extract(" in inspect.getsource(email_recognizer.EmailRecognizer.validate_result)
    # tldextract's default extractor fetches the suffix list over the network (the reason for the patch)
    assert tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls
    # with an engine built, Presidio's module uses a snapshot-only extractor
    assert email_recognizer.tldextract.extract.suffix_list_urls == ()


def test_patch_lemma_fallback_still_needed(eng):
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    nlp_engine = eng.nlp_engine
    doc = nlp_engine.nlp["en"]("Call the office phones today.")
    # Presidio's own (unpatched, private) method copies the empty lemmas of a pipeline without a
    # lemmatizer: the reason for the patch. When this fails, Presidio falls back by itself (or renamed
    # the method): revisit or drop lemma_fallback.
    plain = SpacyNlpEngine._doc_to_nlp_artifact(nlp_engine, doc, "en")
    assert plain.lemmas and not any(plain.lemmas)
    patched = nlp_engine._doc_to_nlp_artifact(doc, "en")  # patched on this instance only
    assert "_doc_to_nlp_artifact" in vars(nlp_engine)
    assert patched.lemmas == [t.lower_ for t in doc] and "phones" in patched.keywords


def test_defaults_come_from_the_config_models():
    from lakedoc.config_schema import NameGazetteerSettings, PiiSettings
    from lakedoc.pii.names import check_settings, gazetteer_settings

    # every key, each default from lakedoc.config_schema; cfg.pii, cfg["pii"] and the plain dict agree
    assert S.load_settings({}) == PiiSettings().model_dump(mode="json")
    cfg = load_config("local", conf_dir=ROOT / "conf", environ={})
    assert cfg.pii == PiiSettings()  # what a unit test builds is what the pipeline runs
    assert S.load_settings(cfg.pii)["name_gazetteer"] == PiiSettings().name_gazetteer == \
        NameGazetteerSettings().model_dump(exclude_none=True)
    assert S.load_settings(cfg.pii) == S.load_settings(cfg["pii"]) == S.load_settings(cfg)
    # the gazetteer's settings stay as configured (the configuration hash) and are read with the defaults
    assert check_settings({"enabled": False}) == {"enabled": False}
    g = gazetteer_settings({"enabled": True, "sources": ["gender_guesser"]})
    assert g.score_full == NameGazetteerSettings().score_full and g.max_tokens == NameGazetteerSettings().max_tokens


_IMPORT_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "patched":
    from lakedoc.pii.patches import lazy_hf_pipeline
    lazy_hf_pipeline()
import presidio_analyzer
from presidio_analyzer.predefined_recognizers.ner import huggingface_ner_recognizer as ner
import transformers
print("pipelines" if "transformers.pipelines" in sys.modules else "no-pipelines",
      "lazy" if getattr(ner.hf_pipeline, "_lakedoc_lazy", False) else "real",
      "attr-restored" if "pipeline" not in vars(transformers) else "attr-left", end=" ")
try:  # the stand-in hands the call to transformers' own pipeline(), which knows no such task
    ner.hf_pipeline("no-such-task-lakedoc")
except Exception as exc:
    print(type(exc).__name__, "pipelines" if "transformers.pipelines" in sys.modules else "no-pipelines")
"""


def _probe(script: str, *args: str) -> str:
    """Run ``script`` in a fresh interpreter (lakedoc's src first on its path): its standard output."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script, str(ROOT / "src"), *args],
                         capture_output=True, text=True, check=True, timeout=300)
    return out.stdout


def _import_presidio(mode: str) -> list[str]:
    return _probe(_IMPORT_PROBE, mode).split()


def test_patch_lazy_hf_pipeline_still_needed():
    # a fresh interpreter: importing Presidio as it is imports transformers.pipelines (the reason for
    # the patch). When this fails, Presidio imports transformers lazily: drop lazy_hf_pipeline.
    assert _import_presidio("plain")[:2] == ["pipelines", "real"]


def test_patch_lazy_hf_pipeline_keeps_transformers_out_of_the_worker():
    # with the patch (what PiiEngine applies first), Presidio holds the lazy stand-in, transformers'
    # pipelines stay unimported, and transformers' own attribute is back afterwards; called, the
    # stand-in is transformers' pipeline() (its error for an unknown task, pipelines then imported)
    assert _import_presidio("patched") == ["no-pipelines", "lazy", "attr-restored", "KeyError", "pipelines"]


_TORCH_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "plain":
    import spacy  # noqa: F401
    print(json.dumps({"torch": "torch" in sys.modules}))
    raise SystemExit
from lakedoc.config import load_config
from lakedoc.pii import engine as E, settings as S
eng = E.get_engine(S.load_settings(load_config("local", environ={}).pii))
found = [[f.entity_type, f.start, f.end, f.score] for t in json.loads(sys.argv[3]) for f in eng.analyze(t)]
state = {"torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}
import thinc.compat
import torch  # afterwards torch imports as usual (a later task's encoder in the same worker)
state.update(thinc_has_torch=thinc.compat.has_torch, torch_works=float(torch.ones(2).sum()) == 2.0,
             found=found)
print(json.dumps(state))
"""

_PROBE_TEXTS = ["Please call Maria Gonzalez at (212) 555-0142 or write to maria.gonzalez@example.com.",
                "Wire the fee to IBAN DE89370400440532013000; Peter Jackson in Rotterdam signs for it."]


def _torch_probe(mode: str) -> dict:
    import json

    return json.loads(_probe(_TORCH_PROBE, mode, json.dumps(_PROBE_TEXTS)).strip().splitlines()[-1])


def test_patch_torch_blocked_still_needed():
    # a fresh interpreter: importing spaCy imports torch (through thinc), the reason for patch 4.
    # When this fails, thinc imports torch lazily: drop torch_blocked.
    assert _torch_probe("plain") == {"torch": True}


def test_patch_torch_blocked_builds_the_engine_without_torch_and_finds_the_same(eng):
    # a fresh worker builds the default engine (en_core_web_sm, no transformers NER) without importing
    # torch or transformers; the findings equal those of an engine in a process where torch is loaded;
    # afterwards torch imports and works
    import torch  # noqa: F401 - this process: torch loaded before the engine (the patch then does nothing)

    got = _torch_probe("engine")
    assert got["torch"] is False and got["transformers"] is False
    assert got["thinc_has_torch"] is False and got["torch_works"] is True
    here = [[f.entity_type, f.start, f.end, f.score] for t in _PROBE_TEXTS for f in eng.analyze(t)]
    assert got["found"] == here
    assert {f[0] for f in here} >= {"PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "IBAN_CODE"}


def test_torch_free_pipeline_reads_the_models_meta(tmp_path):
    import json

    from lakedoc.pii.patches import torch_free_pipeline

    assert torch_free_pipeline(settings().get("spacy_models")["en"]) is True  # the installed small model
    trf = tmp_path / "trf"
    trf.mkdir()
    (trf / "meta.json").write_text(json.dumps({"requirements": ["spacy-curated-transformers>=0.2.2,<1.0.0"],
                                              "pipeline": ["transformer", "ner"]}))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "meta.json").write_text(json.dumps({"requirements": [], "pipeline": ["tok2vec", "ner"]}))
    assert torch_free_pipeline(str(trf)) is False
    assert torch_free_pipeline(str(plain)) is True
    assert torch_free_pipeline(str(tmp_path)) is False  # no meta.json: unknown, never blocked
    assert torch_free_pipeline("no_such_spacy_model_xyz") is False
    # a transformers NER model needs torch whatever the spaCy pipeline
    cfg = S.pii_settings(settings("pii.transformers_model=/models/ner"))
    assert E._torch_free(cfg) is False and E._torch_free(S.pii_settings(settings())) is True
