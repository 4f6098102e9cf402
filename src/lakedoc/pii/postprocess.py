"""What happens to a text's findings after Presidio: duplicates and misreadings dropped
(:func:`dedupe`), every other occurrence of a found value reported too (:func:`propagate`)."""
from __future__ import annotations

import bisect
import re
from collections.abc import Mapping

from lakedoc.pii.redaction import Finding

# Types whose recognizers validate a format or a checksum. A finding of another ("generic") type that
# lies inside one of them is a misreading of the same characters (a phone number inside an IP address,
# a card number or an SSN) and is dropped; the characters stay covered by the specific finding.
SPECIFIC_TYPES = frozenset({"EMAIL_ADDRESS", "IBAN_CODE", "CREDIT_CARD", "IP_ADDRESS", "US_SSN", "CRYPTO",
                            "MAC_ADDRESS", "UUID", "US_ITIN", "US_PASSPORT", "UK_NHS", "MEDICAL_LICENSE"})
MIN_PHONE_DIGITS = 7  # shorter digit runs (postcodes, house numbers) are not reported as phone numbers
PROPAGATE_MIN_CHARS = 4  # shorter values are not propagated

_NAME_PART = re.compile(r"[^\W\d_][^\W\d_'-]*(?:[-'][^\W\d_]+)*")


def dedupe(found: list[Finding], text: str | None = None,
           drop_inside: Mapping[str, frozenset] | None = None) -> list[Finding]:
    """One finding per (type, start, end) (the best score), sorted by position, without: generic
    findings inside a :data:`SPECIFIC_TYPES` one, findings inside an outer type of ``drop_inside``
    (``{PERSON: {STREET_ADDRESS}}``), PERSON findings holding a digit, phone numbers with fewer than
    :data:`MIN_PHONE_DIGITS` digits."""
    best: dict[tuple, Finding] = {}
    for f in found:
        k = (f.entity_type, f.start, f.end)
        if k not in best or f.score > best[k].score:
            best[k] = f
    items = sorted(best.values(), key=lambda f: (f.start, f.end, f.entity_type))
    specific = [f for f in items if f.entity_type in SPECIFIC_TYPES]
    outer_types = frozenset().union(*drop_inside.values()) if drop_inside else frozenset()
    outers = [f for f in items if f.entity_type in outer_types]
    out = []
    for f in items:
        if f.entity_type not in SPECIFIC_TYPES and any(
                s.start <= f.start and f.end <= s.end for s in specific):
            continue
        outer = drop_inside.get(f.entity_type) if drop_inside else None
        if outer and any(o.entity_type in outer and o.start <= f.start and f.end <= o.end and o is not f
                         for o in outers):
            continue
        if f.entity_type == "PERSON" and text is not None and any(c.isdigit() for c in text[f.start:f.end]):
            continue  # names hold no digits: "Franscini 71", "Box 9725" are address parts
        if (f.entity_type == "PHONE_NUMBER" and text is not None
                and sum(c.isdigit() for c in text[f.start:f.end]) < MIN_PHONE_DIGITS):
            continue
        out.append(f)
    return out


def propagate(text: str, found: list[Finding], name_parts: bool = False) -> list[Finding]:
    """Every other occurrence (as a whole word) of a value found in this text gets the same finding:
    NER is context dependent, and a name recognised once must not survive elsewhere in the document.
    With ``name_parts``, the capitalised words of a several-word PERSON finding (given name, surname:
    "Faina D. Yefremova" -> "Faina", "Yefremova") are propagated too."""
    values: dict[str, Finding] = {}
    for f in found:
        v = text[f.start:f.end]
        if len(v.strip()) >= PROPAGATE_MIN_CHARS and (v not in values or f.score > values[v].score):
            values[v] = f
    if name_parts:
        for f in found:
            if f.entity_type != "PERSON":
                continue
            parts = _NAME_PART.findall(text[f.start:f.end])
            if len(parts) < 2:
                continue
            for p in parts:
                if len(p) >= 3 and p[0].isupper() and not p.isupper() and p not in values:
                    values[p] = f
    if not values:
        return []
    covered = sorted((f.start, f.end) for f in found)
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
                         + r")(?!\w)")
    starts = [c[0] for c in covered]
    reach, best = [], -1  # reach[k]: furthest end of the findings covered[0..k]
    for _, ce in covered:
        best = max(best, ce)
        reach.append(best)
    out = []
    for m in pattern.finditer(text):
        s, e = m.span()
        k = bisect.bisect_right(starts, s)
        if k and reach[k - 1] >= e:  # already inside a finding that starts at or before s
            continue
        src = values[m.group(0)]
        out.append(Finding(src.entity_type, s, e, src.score, "propagated:" + src.recognizer))
    return out
