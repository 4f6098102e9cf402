"""``lakedoc search`` and :func:`search`: query the configured index with the model's query convention.

    lakedoc search "query text" [--label L ...] [--format F] [--k N] [--mode vector|hybrid]
                   [--target local] [--warehouse DIR] [--set key=value ...] [--json]

The query is embedded by :func:`lakedoc.encoder.get_encoder` with ``kind="query"`` (E5's ``query: ``
prefix and the like come from the ``encoder`` configuration), so it matches how the ``embed`` task
encoded the passages. Several ``--label`` values match chunks carrying *any* of them.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from lakedoc.index.hit import Hit


def embed_query(query: str, cfg, encoder=None):
    if encoder is None:
        from lakedoc.encoder import get_encoder

        encoder = get_encoder(cfg)
    return encoder.encode([query], kind="query")[0]


def search(query: str, *, cfg=None, labels: Sequence[str] | None = None, format: str | None = None, k: int = 10,
           mode: str = "vector", encoder=None, backend=None, target: str = "local") -> list[Hit]:
    """Ranked hits for ``query`` from the configured backend (``index.backend``).

    ``cfg`` defaults to ``load_config(target)``; ``encoder``/``backend`` may be passed in (an API server
    keeps them open between calls).
    """
    if mode not in ("vector", "hybrid"):
        raise ValueError(f"mode must be 'vector' or 'hybrid', got {mode!r}")
    if not query or not query.strip():
        raise ValueError("empty query")
    if cfg is None:
        from lakedoc.config import load_config

        cfg = load_config(target)
    vector = embed_query(query, cfg, encoder)
    own = backend is None
    if own:
        from lakedoc.index.backends import open_backend

        backend = open_backend(cfg)
    try:
        return backend.search(vector, query, labels=list(labels or []) or None, format=format, k=int(k), mode=mode)
    finally:
        if own:
            backend.close()


def format_hits(hits: list[Hit], query: str = "") -> str:
    if not hits:
        return "no results"
    lines = []
    for i, h in enumerate(hits, 1):
        where = h.file_name or h.source_path or h.doc_id
        loc = f" [{h.unit_ref}]" if h.unit_ref else ""
        scores = {s["label"]: s.get("score") for s in h.label_scores or []}
        labels = ", ".join(f"{lab} {scores[lab]:.2f}" if isinstance(scores.get(lab), (int, float)) else lab
                           for lab in h.labels) or "-"
        lines.append(f"{i:>2}. {h.score:.4f}  {where}{loc}  ({h.format or '?'})  labels: {labels}")
        lines.append(f"    {h.snippet(200, query)}")
    return "\n".join(lines)


def cmd_search(args) -> int:
    from pathlib import Path

    from lakedoc.config import load_config

    sets = list(args.set)
    if args.warehouse:
        sets.append(f"tables.warehouse={Path(args.warehouse).resolve()}")
    cfg = load_config(args.target, conf_dir=args.conf_dir, user_file=args.config, sets=sets)
    try:
        hits = search(args.query, cfg=cfg, labels=args.label, format=args.format, k=args.k, mode=args.mode)
    except (LookupError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([h.as_dict() for h in hits], default=str, indent=1))
    else:
        print(format_hits(hits, args.query))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("search", help="search the vector index (semantic or hybrid)")
    p.add_argument("query", help="the query text")
    p.add_argument("--label", action="append", default=[], help="only chunks with this label (repeatable: any of)")
    p.add_argument("--format", help="only this format (docx, xlsx, pptx, pdf, msg, ...)")
    p.add_argument("--k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--mode", choices=("vector", "hybrid"), default="vector", help="vector (default) or hybrid")
    p.add_argument("--target", default="local", help="configuration target (default: local)")
    p.add_argument("--conf-dir", default=None, help="folder holding base.yml and <target>.yml")
    p.add_argument("--config", default=None, help="an extra YAML file merged over conf/")
    p.add_argument("--warehouse", help="folder of the local Delta tables (default: tables.warehouse)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    p.set_defaults(func=cmd_search)
