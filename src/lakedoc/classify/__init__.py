"""Zero-shot classification of redacted documents with a local dual encoder (task ``classify``) and
the chunk embeddings the vector index reuses (task ``embed``). See :mod:`lakedoc.classify.stage`."""
