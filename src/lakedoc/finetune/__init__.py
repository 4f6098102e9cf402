"""Fine-tuning of the dual encoder (issue 12): LoRA adapters on the configured encoder.

One module per concern, imported lazily (torch and peft are optional, the ``train`` extra):

* :mod:`lakedoc.finetune.model` — :class:`~lakedoc.finetune.model.DualEncoder`, the shared transformer with
  LoRA adapters that embeds documents and label descriptions; saved as a folder (adapter, tokenizer,
  ``meta.json``, label-embedding cache).
* :mod:`lakedoc.finetune.train` — :func:`~lakedoc.finetune.train.fit` (supervised fine-tuning with early
  stopping on validation macro-F1) and :func:`~lakedoc.finetune.train.losses`.
* :mod:`lakedoc.finetune.method` — the harness method ``finetuned`` (``lakedoc evaluate --method finetuned``).
* :mod:`lakedoc.finetune.cli` — ``lakedoc finetune`` (``--pbt``: :mod:`lakedoc.finetune.pbt`,
  ``--from-feedback``: :mod:`lakedoc.finetune.grpo`).
"""
