"""Long texts are analysed and anonymized in pieces of at most ``pii.chunk_chars`` characters.

spaCy's memory grows with the text (~1 GB per 100k characters), so every text is cut far below its
``max_length`` on the strongest boundary available (paragraph, line, sentence, word); the engine maps
the findings back to offsets in the full text. Memory is then bounded by the chunk size, whatever the
document's length, and the chunks of many documents share one ``nlp.pipe`` pass.
"""
from __future__ import annotations

SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", " ")


def split_text(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, end)`` spans covering ``text``, each at most ``max_chars`` long, cut on
    the strongest boundary (paragraph, line, sentence, word) found in the second half of the window."""
    n = len(text)
    if n <= max_chars:
        return [(0, n)]
    spans, pos = [], 0
    while pos < n:
        if n - pos <= max_chars:
            spans.append((pos, n))
            break
        hi = pos + max_chars
        lo = pos + max_chars // 2
        cut = -1
        for sep in SEPARATORS:
            i = text.rfind(sep, lo, hi - len(sep) + 1)
            if i != -1:
                cut = i + len(sep)
                break
        if cut <= pos:
            cut = hi
        spans.append((pos, cut))
        pos = cut
    return spans
