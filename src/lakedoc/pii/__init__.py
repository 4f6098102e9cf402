"""PII redaction (task ``redact_pii``): bronze ``documents`` -> silver ``documents_redacted`` + ``pii_findings``.

* :mod:`lakedoc.pii.settings` — the ``pii`` section checked (``load_settings``) and fingerprinted
  (``config_hash``); no Presidio import, the driver plans with it.
* :mod:`lakedoc.pii.engine` — the Presidio analyzer/anonymizer (:class:`~lakedoc.pii.engine.PiiEngine`),
  cached once per Python worker; assembled from :mod:`~lakedoc.pii.nlp` (NLP engine, never a download),
  :mod:`~lakedoc.pii.registry` (recognizers), :mod:`~lakedoc.pii.operators` (keyed-hash pseudonyms...)
  and :mod:`~lakedoc.pii.patches` (the two documented changes to Presidio's behaviour).
* :mod:`lakedoc.pii.recognizers` — lakedoc's recognizers, one module per class (windowed phone numbers,
  first-name gazetteer, whose name lists and settings are in :mod:`lakedoc.pii.names`).
* :mod:`lakedoc.pii.splitting` (long texts in chunks), :mod:`lakedoc.pii.postprocess` (dropped and
  propagated findings), :mod:`lakedoc.pii.redaction` (``Finding``, ``Redaction``, a batch of documents).
* :mod:`lakedoc.pii.stage` — the Spark task (``mapInPandas``), incremental and idempotent.
* :mod:`lakedoc.pii.eval` — ``lakedoc pii-eval``: precision/recall/F1 and leaked characters on
  span-labelled data (presidio-research JSON format).
"""
