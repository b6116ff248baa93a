"""KServe's Python model server with a scikit-learn model: a ``kserve.Model`` subclass as its
documentation shows, answering v2 (and v1) requests.

Run in the KServe virtual environment: ``python kserve_model.py --model_name rf
--model_file /path/model.joblib --http_port 8080 --workers 2 --enable_grpc false``.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import joblib
import kserve
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.utils import generate_uuid

# The model was fitted on a DataFrame; KServe hands the model bare arrays.
warnings.filterwarnings("ignore", message="X does not have valid feature names")


class SklearnModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, model_file: str) -> None:
        super().__init__(name)
        self.model_file = model_file
        self.model: Any = None
        self.load()

    def load(self) -> bool:
        self.model = joblib.load(self.model_file)
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, InferRequest):
            rows = payload.inputs[0].as_numpy()
            predictions = np.asarray(self.model.predict(rows))
            output = InferOutput(
                name="predict",
                shape=list(predictions.shape),
                datatype="INT64",
                data=predictions.tolist(),
            )
            return InferResponse(
                model_name=self.name,
                infer_outputs=[output],
                response_id=payload.id or generate_uuid(),
            )
        rows = np.asarray(payload["instances"], dtype=np.float64)
        return {"predictions": self.model.predict(rows).tolist()}


if __name__ == "__main__":
    # KServe parses its own flags (--http_port, --workers, ...) from the same command line.
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_file", required=True)
    args, _ = parser.parse_known_args()
    kserve.logging.configure_logging(model_server.args.log_config_file)
    model = SklearnModel(model_server.args.model_name, args.model_file)
    ModelServer().start([model])
