"""The anonymizer's operators per entity type (``pii.operators``): ``replace`` (``<PERSON>``), ``mask``
(``*****``), ``redact`` (removed) or ``hash`` (``<PERSON_1a2b3c4d5e6f>``: HMAC-SHA256 of the
normalised value under the secret ``pii.hash_key``, so the same value gives the same token in every
document, and another key gives other tokens)."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from presidio_anonymizer.entities import OperatorConfig

from lakedoc.config_schema import ConfigError, PiiSettings


def hash_token(key: bytes, entity: str, value: str, n_hex: int) -> str:
    """``<ENTITY_digest>``: the value's whitespace collapsed and case folded, keyed by the entity type."""
    norm = " ".join(value.split()).casefold()
    digest = hmac.new(key, f"{entity}\x00{norm}".encode(), hashlib.sha256).hexdigest()
    return f"<{entity}_{digest[:n_hex]}>"


def build_operators(settings: PiiSettings, entities: Iterable[str], hash_key: str | None
                    ) -> dict[str, OperatorConfig]:
    """Operator per entity type of ``entities`` and of ``pii.operators``, and ``DEFAULT`` (token ``PII``)."""
    ops = settings.operators
    mask_char = settings.mask_char
    n_hex = settings.hash_chars
    if "hash" in ops.values() and not hash_key:
        raise ConfigError("an operator is 'hash' but no key was given (pii.hash_key)")
    key = hash_key.encode() if hash_key else b""

    def make(entity: str, op: str) -> OperatorConfig:
        if op == "replace":
            return OperatorConfig("replace", {"new_value": f"<{entity}>"})
        if op == "mask":
            return OperatorConfig("mask", {"masking_char": mask_char, "chars_to_mask": 10**9, "from_end": False})
        if op == "redact":
            return OperatorConfig("redact", {})
        return OperatorConfig("custom", {"lambda": lambda value: hash_token(key, entity, value, n_hex)})

    out = {ent: make(ent, ops.get(ent, ops["DEFAULT"])) for ent in entities}
    for ent, op in ops.items():
        if ent != "DEFAULT":
            out[ent] = make(ent, op)
    out["DEFAULT"] = make("PII", ops["DEFAULT"])
    return out
