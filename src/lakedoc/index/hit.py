"""One search result."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Hit:
    chunk_id: str
    doc_id: str | None  # None when the index document has none (Azure returns null)
    score: float
    text: str = ""
    file_name: str | None = None
    source_path: str | None = None
    format: str | None = None
    unit_ref: str | None = None
    labels: list[str] = field(default_factory=list)
    label_scores: list[dict] = field(default_factory=list)
    modified_at: object = None

    def snippet(self, width: int = 200, query: str | None = None) -> str:
        """A one-line excerpt of the (redacted) text, centred on the first query word found."""
        text = re.sub(r"\s+", " ", self.text or "").strip()
        if len(text) <= width:
            return text
        start = 0
        for word in sorted(re.findall(r"\w{3,}", query or ""), key=len, reverse=True):
            i = text.lower().find(word.lower())
            if i >= 0:
                start = max(0, i - width // 3)
                break
        out = text[start:start + width]
        return ("…" if start else "") + out + ("…" if start + width < len(text) else "")

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)
