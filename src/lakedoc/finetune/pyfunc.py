"""The MLflow pyfunc of a registered fine-tuned encoder (:mod:`lakedoc.finetune.registry`).

``predict(DataFrame with a text column) -> DataFrame`` with one column per label: the
:class:`~lakedoc.finetune.model.DualEncoder`'s sigmoid scores. Its one artifact, ``finetuned``, is the
saved model folder. Kept apart from the registry so that Spark workers, which only read resolved
folders, never import ``mlflow.pyfunc``.
"""
from __future__ import annotations

from mlflow.pyfunc import PythonModel

ARTIFACT = "finetuned"  # the pyfunc's artifact key: the saved model folder


class EncoderPyfunc(PythonModel):
    def load_context(self, context) -> None:  # no type hints: MLflow reads them as a schema
        from lakedoc.finetune.model import DualEncoder

        self.model = DualEncoder.load(context.artifacts[ARTIFACT], device="cpu")

    def predict(self, context, model_input, params=None):
        import pandas as pd

        scores = self.model.predict_scores([str(t) for t in model_input["text"]])
        return pd.DataFrame(scores, columns=list(self.model.label_names))


__all__ = ["ARTIFACT", "EncoderPyfunc"]
