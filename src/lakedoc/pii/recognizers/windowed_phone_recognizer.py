"""``WindowedPhoneRecognizer``: Presidio's phone recognizer run only where a phone number can be."""
from __future__ import annotations

import re

from phonenumbers.phonenumberutil import _PLUS_CHARS, _VALID_PUNCTUATION
from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from lakedoc.pii.postprocess import MIN_PHONE_DIGITS

WINDOW_MARGIN = 40
# a run of digits and phone punctuation: phonenumbers' own separator set (its leading characters too)
_PHONE_RUN = re.compile(f"[{_PLUS_CHARS}(\\d][{_VALID_PUNCTUATION}\\d]*\\d")


def phone_windows(text: str, min_digits: int = MIN_PHONE_DIGITS, margin: int = WINDOW_MARGIN,
                  skip_glued: bool = False) -> list[tuple[int, int]]:
    """Merged ``(start, end)`` windows around every run of digits and phone punctuation (phonenumbers'
    own separator set) that holds at least ``min_digits`` digits. Phone findings with fewer digits are
    dropped anyway (:data:`lakedoc.pii.postprocess.MIN_PHONE_DIGITS`), so scanning only these windows
    loses nothing; the margin keeps the characters phonenumbers looks at around a match."""
    out: list[tuple[int, int]] = []
    for m in _PHONE_RUN.finditer(text):
        run = m.group(0)
        digits = sum(c.isdigit() for c in run)
        if digits < min_digits:
            continue
        if skip_glued and digits == len(run) <= 20 and (
                (m.start() and text[m.start() - 1].isalpha()) or (m.end() < len(text) and text[m.end()].isalpha())):
            continue  # "DE89370400440532013000": phonenumbers (leniency >= 1) rejects a number touching a letter
        s, e = max(0, m.start() - margin), min(len(text), m.end() + margin)
        while s > 0 and not text[s - 1].isspace():  # never cut a word: its cut end could look like a number
            s -= 1
        while e < len(text) and not text[e].isspace():
            e += 1
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


class WindowedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer (``phonenumbers``, one scan per region) run only on the windows
    of :func:`phone_windows`: most texts hold no 7-digit run and cost nothing. Same findings as
    :class:`PhoneRecognizer` on every number of at least 7 digits (``tests/test_pii_engine.py``)."""

    def analyze(self, text, entities, nlp_artifacts=None):
        results = []
        for s, e in phone_windows(text, MIN_PHONE_DIGITS, skip_glued=(self.leniency or 0) >= 1):
            for r in super().analyze(text[s:e], entities, nlp_artifacts):
                r.start += s
                r.end += s
                results.append(r)
        return EntityRecognizer.remove_duplicates(results)
