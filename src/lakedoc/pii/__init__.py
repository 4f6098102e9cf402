"""PII redaction (task ``redact_pii``): bronze ``documents`` -> silver ``documents_redacted`` + ``pii_findings``.

* :mod:`lakedoc.pii.engine` — the Presidio analyzer/anonymizer built from ``conf`` (section ``pii``),
  cached once per Python worker, with long-text chunking and keyed-hash pseudonyms.
* :mod:`lakedoc.pii.stage` — the Spark task (``mapInPandas``), incremental and idempotent.
* :mod:`lakedoc.pii.eval` — ``lakedoc pii-eval``: precision/recall/F1 and leaked characters on
  span-labelled data (presidio-research JSON format).
"""
