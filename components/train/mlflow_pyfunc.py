"""The MLflow pyfunc of a kfp-mlops model, for `mlflow models serve` and `mlflow.pyfunc.load_model` users.

Trusted code only: MLflow runs this file when it loads the model (models-as-code),
so anyone who can edit it in the artifact store runs code in the loading process.
kfp-mlops's own steps never load it; they read the model folder through
``ServingTransform.load``, which checks file hashes and unpickles nothing. This
pyfunc calls the same transform, so its predictions are the steps' predictions.
Needs kfp-mlops (with its train extra) installed where it is loaded.

Input: a DataFrame with the feature columns. Output: a DataFrame with
``prediction`` (class label or value) and, for classifiers, ``probability_<class>``.
"""

import mlflow

from kfp_mlops.components.train.mlflow_model import ARTIFACT
from kfp_mlops.components.train.serving import ServingTransform


class TabularModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.transform = ServingTransform.load(context.artifacts[ARTIFACT])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        return self.transform.predict_frame(pd.DataFrame(model_input), where="pyfunc input")


mlflow.models.set_model(TabularModel())
