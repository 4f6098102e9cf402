"""Part-of-speech tags on demand: the tagger run only around the tokens that need a tag.

The only reader of POS tags in the PII engine is the name gazetteer, and only for a capitalised first
name that is also an English word ("Grace", "Florence"): a few tokens per document. Running spaCy's
``tok2vec`` + ``tagger`` over every token for them was a quarter of the engine's CPU. With ``tagger`` in
``pii.spacy_disable`` the NLP pass skips both (:func:`drop_unused_tok2vec`: a ``tok2vec`` no enabled
pipe listens to is switched off too), and :class:`OnDemandTagger` tags just those tokens.

**Same tags, by construction.** A CNN tagger's tag of token *i* depends only on tokens *i − r … i + r*,
where *r* (the receptive field) is the encoder's ``depth × window_size`` (4 for the ``en_core_web_*``
pipelines): token embeddings are per token, each window-encoder layer widens the view by
``window_size``, and the softmax is per token. So the tagger run on ``doc[i-r : i+r+1]`` (cut at the
document's ends, where the full run pads the same way) gives token *i* the tag the full run gives it;
``tests/test_pii_tagging.py`` compares both on real text. An encoder whose reach this module does not know
(a BiLSTM, a transformer) gets the whole document tagged instead, so the tags never differ.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# token-local embeddings and windowed encoders whose receptive field is depth x window_size
_LOCAL_EMBEDS = ("spacy.MultiHashEmbed.", "spacy.CharacterEmbed.")
_WINDOW_ENCODERS = ("spacy.MaxoutWindowEncoder.", "spacy.MishWindowEncoder.")
_TAGGED = "lakedoc_tagged_on_demand"  # Doc.user_data key: this document's needed tokens are tagged


def _tok2vec_reach(cfg: dict) -> int | None:
    """Receptive field (tokens each side) of a ``tok2vec`` model configuration, or None if unknown."""
    arch = str(cfg.get("@architectures", ""))
    if arch.startswith("spacy.HashEmbedCNN."):
        return int(cfg["depth"]) * int(cfg["window_size"])
    if arch.startswith("spacy.Tok2Vec."):
        embed, encode = cfg.get("embed") or {}, cfg.get("encode") or {}
        if (str(embed.get("@architectures", "")).startswith(_LOCAL_EMBEDS)
                and str(encode.get("@architectures", "")).startswith(_WINDOW_ENCODERS)):
            return int(encode["depth"]) * int(encode["window_size"])
    return None


def _upstream(nlp: Any, name: str) -> str | None:
    """The ``tok2vec`` component the pipe ``name`` listens to, or None when it embeds its own."""
    from spacy.pipeline import Tok2Vec

    for comp_name in nlp.component_names:
        comp = nlp.get_pipe(comp_name)
        if isinstance(comp, Tok2Vec) and name in comp.listening_components:
            return comp_name
    return None


def tagger_reach(nlp: Any, name: str = "tagger") -> int | None:
    """How many tokens each side of a token the tagger ``name`` of ``nlp`` looks at, or None when that
    is not known from the pipeline's configuration (then whole documents are tagged)."""
    model = nlp.config["components"][name].get("model") or {}
    if not str(model.get("@architectures", "")).startswith("spacy.Tagger."):
        return None
    tok2vec = model.get("tok2vec") or {}
    if str(tok2vec.get("@architectures", "")).startswith("spacy.Tok2VecListener."):
        upstream = _upstream(nlp, name)
        if upstream is None:
            return None
        tok2vec = nlp.config["components"][upstream].get("model") or {}
    return _tok2vec_reach(tok2vec)


def drop_unused_tok2vec(nlp: Any) -> list[str]:
    """Switch off every enabled ``tok2vec`` component whose listeners are all disabled: its only output
    would be ``doc.tensor``, which nothing in the PII engine reads. Returns the names switched off."""
    from spacy.pipeline import Tok2Vec

    off = []
    for name in list(nlp.pipe_names):
        comp = nlp.get_pipe(name)
        if isinstance(comp, Tok2Vec) and comp.listening_components and \
                not any(lis in nlp.pipe_names for lis in comp.listening_components):
            nlp.disable_pipe(name)
            off.append(name)
    return off


class OnDemandTagger:
    """Tags chosen tokens of documents that the NLP pass did not tag (the pipeline's ``tagger`` is
    disabled). :meth:`tag` is a no-op when the tagger ran over the whole document anyway, and when the
    pipeline has no tagger (the tags stay empty, as they would with the tagger excluded)."""

    def __init__(self, nlp: Any, name: str = "tagger"):
        self.nlp = nlp
        self.name = name
        self.available = name in nlp.component_names
        self.reach = tagger_reach(nlp, name) if self.available else None
        self.upstream = _upstream(nlp, name) if self.available else None

    def needed(self) -> bool:
        """True when the NLP pass leaves the tags empty and this tagger can fill them in."""
        return self.available and self.name not in self.nlp.pipe_names

    def windows(self, n: int, positions: Iterable[int]) -> list[tuple[int, int]]:
        """Merged token ranges ``[a, b)`` that hold every position with its receptive field (the whole
        document when the reach is unknown)."""
        pos = sorted(set(positions))
        if not pos:
            return []
        if self.reach is None:
            return [(0, n)]
        out: list[tuple[int, int]] = []
        for i in pos:
            a, b = max(0, i - self.reach), min(n, i + self.reach + 1)
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        return out

    def tag(self, docs: Sequence[Any], positions: Sequence[Sequence[int]]) -> None:
        """Set ``tag_`` on the tokens at ``positions[k]`` of each ``docs[k]``: the tags a full tagger run
        gives them. All windows of all documents go through the tagger as one batch. A document is tagged
        once: later calls skip it (a mark in its ``user_data``)."""
        if not self.needed():
            return
        jobs: list[tuple[Any, int, set[int]]] = []  # (doc, window start, positions inside)
        pieces = []
        for doc, pos in zip(docs, positions, strict=True):
            if not pos or doc.user_data.get(_TAGGED):
                continue
            doc.user_data[_TAGGED] = True
            want = set(pos)
            for a, b in self.windows(len(doc), want):
                jobs.append((doc, a, want))
                pieces.append(doc[a:b].as_doc())
        if not pieces:
            return
        if self.upstream is not None:
            pieces = list(self.nlp.get_pipe(self.upstream).pipe(pieces, batch_size=len(pieces)))
        pieces = list(self.nlp.get_pipe(self.name).pipe(pieces, batch_size=len(pieces)))
        for (doc, a, want), piece in zip(jobs, pieces, strict=True):
            for k, tok in enumerate(piece):
                if a + k in want:
                    doc[a + k].tag_ = tok.tag_
