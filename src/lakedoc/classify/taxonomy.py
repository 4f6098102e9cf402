"""Label taxonomies (``conf/taxonomy/*.yml``): labels with natural-language descriptions and parents.

File format::

    name: reuters
    labels:
      - name: earn
        descriptions: ["corporate earnings, profits, dividends and quarterly results", ...]
      - name: wheat
        parent: grain            # optional; must be another label of the file
        descriptions: [...]

``description`` (one string) is accepted for ``descriptions``. A label without descriptions is
described by its own name (dashes/underscores read as spaces).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from lakedoc.config import Config

log = logging.getLogger(__name__)


class TaxonomyError(ValueError):
    pass


@dataclass(frozen=True)
class Label:
    name: str
    descriptions: tuple[str, ...]
    parent: str | None = None


@dataclass
class Taxonomy:
    name: str
    labels: list[Label]
    source: str | None = None
    _by_name: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._by_name = {lab.name: lab for lab in self.labels}

    @property
    def names(self) -> list[str]:
        return [lab.name for lab in self.labels]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Label | None:
        return self._by_name.get(name)

    def hash(self) -> str:
        """Changes whenever a label, a description or a parent changes."""
        payload = [[lab.name, list(lab.descriptions), lab.parent] for lab in self.labels]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]

    def restricted(self, names: Sequence[str]) -> Taxonomy:
        """A taxonomy with exactly ``names`` in that order; unknown names are described by themselves."""
        missing = [n for n in names if n not in self]
        if missing:
            log.warning("taxonomy %s has no description for %d label(s) (%s): their names are used",
                        self.name, len(missing), ", ".join(missing[:10]))
        keep = set(names)
        labels = []
        for n in names:
            lab = self.get(n) or Label(n, (label_text(n),))
            parent = lab.parent if lab.parent in keep else None
            labels.append(Label(lab.name, lab.descriptions, parent))
        return Taxonomy(self.name, labels, self.source)


def label_text(name: str) -> str:
    return name.replace("_", " ").replace("-", " ")


def parse_taxonomy(data: dict, source: str | None = None) -> Taxonomy:
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
        raise TaxonomyError(f"{source or 'taxonomy'}: expected a mapping with a 'labels' list")
    labels, seen = [], set()
    for i, item in enumerate(data["labels"]):
        if isinstance(item, str):
            item = {"name": item}
        name = str(item.get("name") or "").strip()
        if not name:
            raise TaxonomyError(f"{source}: label #{i + 1} has no name")
        if name in seen:
            raise TaxonomyError(f"{source}: label {name!r} is defined twice")
        seen.add(name)
        desc = item.get("descriptions", item.get("description"))
        if isinstance(desc, str):
            desc = [desc]
        desc = tuple(str(d).strip() for d in (desc or []) if str(d).strip()) or (label_text(name),)
        labels.append(Label(name, desc, item.get("parent") or None))
    for lab in labels:
        if lab.parent is not None and lab.parent not in seen:
            raise TaxonomyError(f"{source}: label {lab.name!r} has unknown parent {lab.parent!r}")
        if lab.parent == lab.name:
            raise TaxonomyError(f"{source}: label {lab.name!r} is its own parent")
    return Taxonomy(str(data.get("name") or (Path(source).stem if source else "taxonomy")), labels, source)


def load_taxonomy(path: str | Path) -> Taxonomy:
    p = Path(path)
    if not p.is_file():
        raise TaxonomyError(f"taxonomy file {p} does not exist (classify.taxonomy)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{p}: not valid YAML: {exc}") from None
    return parse_taxonomy(data, str(p))


def taxonomy_for(cfg: Config, label_names: Sequence[str] | None = None) -> Taxonomy:
    """The configured taxonomy; when ``label_names`` are given and it lacks some of them, the first
    taxonomy under ``conf/taxonomy/`` that has them all (so ``lakedoc evaluate`` on the ToS data picks
    ``tos_unfair.yml`` without a --set)."""
    configured = load_taxonomy(cfg.resolve_path(cfg.classify.taxonomy))
    if not label_names or all(n in configured for n in label_names):
        return configured
    folder = Path(cfg.resolve_path("conf/taxonomy"))
    if cfg.conf_dir:
        folder = Path(cfg.conf_dir) / "taxonomy"
    best, best_cover = configured, sum(n in configured for n in label_names)
    for f in sorted(folder.glob("*.yml")):
        try:
            t = load_taxonomy(f)
        except TaxonomyError:
            continue
        cover = sum(n in t for n in label_names)
        if cover > best_cover:
            best, best_cover = t, cover
    if best is not configured:
        log.info("labels are not those of %s: using taxonomy %s (%d/%d labels described)",
                 configured.source, best.source, best_cover, len(label_names))
    return best
