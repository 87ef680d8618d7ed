"""The MLflow model of a kfp-mlops training run, logged as code (nothing is unpickled on load).

Input: a DataFrame with the feature columns. Output: a DataFrame with
``prediction`` (class label or value) and, for classifiers, one probability
column per class. Needs torch, numpy and pandas only.
"""

import json

import mlflow
import numpy as np
import pandas as pd
import torch


class TabularModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.program = torch.export.load(context.artifacts["model"]).module()
        with open(context.artifacts["preprocessing"]) as handle:
            self.prep = json.load(handle)
        self.lookups = [{v: i + 1 for i, v in enumerate(c["vocabulary"])} for c in self.prep["categorical"]]

    def predict(self, context, model_input, params=None):
        frame = pd.DataFrame(model_input)
        numeric = np.column_stack(
            [pd.to_numeric(frame[c["name"]], errors="coerce").to_numpy(dtype=np.float64) for c in self.prep["numeric"]]
            or [np.zeros((len(frame), 0))]
        ).astype(np.float32)
        numeric[~np.isfinite(numeric)] = np.nan
        categorical = np.column_stack(
            [frame[c["name"]].map(lambda v, lk=lookup: lk.get(None if pd.isna(v) else str(v), 0)).to_numpy(dtype=np.int64) for c, lookup in zip(self.prep["categorical"], self.lookups)]
            or [np.zeros((len(frame), 0), dtype=np.int64)]
        )
        with torch.no_grad():
            out = self.program(torch.from_numpy(numeric), torch.from_numpy(categorical)).numpy()
        task, classes = self.prep["task"], self.prep["classes"]
        if task == "regression":
            return pd.DataFrame({"prediction": out})
        probs = np.column_stack([1 - out, out]) if task == "binary" else out
        result = pd.DataFrame({f"probability_{c}": probs[:, i] for i, c in enumerate(classes)})
        result.insert(0, "prediction", [classes[i] for i in probs.argmax(axis=1)])
        return result


mlflow.models.set_model(TabularModel())
