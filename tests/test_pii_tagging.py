"""On-demand POS tags (lakedoc.pii.tagging): the tagger run on a token's receptive field gives the tag the
full run gives; the default engine runs neither tok2vec nor the tagger over every token, and finds
exactly what an engine that does finds."""
from __future__ import annotations

import json

import pytest

from conftest import ROOT, shared_path
from lakedoc.config import load_config
from lakedoc.pii import engine as E, settings as S
from lakedoc.pii.tagging import OnDemandTagger, drop_unused_tok2vec, tagger_reach

# real-world sentences with capitalised first names that are also English words, places, titles
TEXTS = [
    "Grace Hopper met Will Harper in Florence, Italy, on 12 May; Bill and Rose Madison flew to Victoria.",
    "Will you send the report to the board tomorrow? Mark it urgent, said Frank Summers of Hope Logistics.",
    "Director: Joy Patel. Cast: Dawn Rivers, Hunter Wells, Faith Ng. Florence is lovely in April.",
    "The warehouse on Devon Street ships grain to Morgan Stanley Investments; call Grant at (212) 555-0142.",
    "Dear Sue, Victor Hugo Street is closed; ask Ray or Amber Holt at the Berlin office before Monday.",
    "After the crash, Rich Young said prices would rise; Jack Frost and Penny Lane declined to comment.",
]


def settings(*sets):
    return S.load_settings(load_config("local", conf_dir=ROOT / "conf", environ={}, sets=list(sets)).pii)


@pytest.fixture(scope="module")
def nlp():
    import spacy

    nlp = spacy.load(settings()["spacy_models"]["en"])
    for p in ("parser", "attribute_ruler", "lemmatizer"):
        nlp.disable_pipe(p)
    return nlp


def test_reach_of_the_installed_model_and_unknown_encoders(nlp):
    assert tagger_reach(nlp) == 4  # en_core_web_sm: MaxoutWindowEncoder, depth 4, window 1
    tagger = OnDemandTagger(nlp)
    assert tagger.upstream == "tok2vec" and tagger.reach == 4
    assert tagger.windows(100, [10, 15, 40, 99]) == [(6, 20), (36, 45), (95, 100)]
    tagger.reach = None  # an encoder whose reach is not known: the whole document
    assert tagger.windows(100, [40]) == [(0, 100)] and tagger.windows(100, []) == []


def test_on_demand_tags_equal_the_full_taggers_on_every_token(nlp):
    full = list(nlp.pipe(TEXTS))
    assert "tagger" in nlp.pipe_names
    with nlp.select_pipes(disable=["tok2vec", "tagger"]):
        bare_docs = [list(nlp.pipe(TEXTS)) for _ in range(12)]
        tagger = OnDemandTagger(nlp)
        assert tagger.needed()
        # every 12th token from 12 offsets: windows of 9 tokens that never merge, every token covered
        for off, bare in enumerate(bare_docs):
            tagger.tag(bare, [range(off, len(d), 12) for d in bare])
            for f, b in zip(full, bare, strict=True):
                assert [t.tag_ for t in b][off::12] == [t.tag_ for t in f][off::12]
                assert all(not t.tag_ for i, t in enumerate(b) if i % 12 != off)  # only those
        tagger.tag(bare_docs[0], [[0]] * len(TEXTS))  # a tagged document is not tagged again
        assert [t.tag_ for t in bare_docs[0][0]][1] == ""
    assert not OnDemandTagger(nlp).needed()  # the tagger runs in the NLP pass: nothing to do


def test_unused_tok2vec_is_switched_off():
    import spacy

    nlp = spacy.load(settings()["spacy_models"]["en"])
    nlp.disable_pipe("parser")
    assert drop_unused_tok2vec(nlp) == []  # the tagger still listens
    nlp.disable_pipe("tagger")
    assert drop_unused_tok2vec(nlp) == ["tok2vec"] and "tok2vec" not in nlp.pipe_names
    assert "ner" in nlp.pipe_names  # NER embeds its own tok2vec


def _dev_texts(n: int) -> list[str]:
    try:
        data = shared_path("datasets", "pii_presidio_synth", "dev.json")
    except pytest.skip.Exception:
        return []
    return [d["full_text"] for d in json.loads(data.read_text())[:n]]


def test_default_engine_finds_what_the_full_tagger_finds():
    # the default (tagger and, with it, tok2vec off; tags on demand) against the same engine with the
    # tagger in the NLP pass: the same findings, on these sentences and the shared dev set when present
    dflt = E.PiiEngine(settings())
    assert dflt.nlp_engine.nlp["en"].pipe_names == ["ner"]
    with_tagger = {**settings(), "spacy_disable": ["parser", "attribute_ruler", "lemmatizer"]}
    # same findings, so the same configuration hash: an upgrade does not re-redact every document
    assert S.config_hash(with_tagger) == S.config_hash(settings())
    assert S.config_hash({**with_tagger, "spacy_disable": ["attribute_ruler", "lemmatizer"]}) != S.config_hash(
        settings())
    tagged = E.PiiEngine(with_tagger)
    assert tagged.nlp_engine.nlp["en"].pipe_names == ["tok2vec", "tagger", "ner"]
    texts = TEXTS + _dev_texts(300)
    got, want = dflt.analyze_many(texts), tagged.analyze_many(texts)
    assert got == want
    # the gazetteer's names whose first name is also an English word: each needed its tag
    gaz = {t[f.start:f.end] for t, fs in zip(TEXTS, got[:len(TEXTS)], strict=True)
           for f in fs if f.recognizer == "NameGazetteerRecognizer"}
    assert {"Faith Ng", "Amber Holt", "Grant", "Sue"} <= gaz and "Will" not in gaz
