"""The model server, ``mlops-operator serve``: what runs in an InferenceService's pods.

Modules: :mod:`.cli` (command line, light to import), :mod:`.config`, :mod:`.app` (the ASGI
app), :mod:`.grpc_api` (the gRPC endpoint beside it; messages generated into :mod:`.proto`),
:mod:`.protocol` (v2/v1 request validation, pure), :mod:`.tensors` (binary tensor data, pure),
:mod:`.errors`, :mod:`.model` (verified loading),
:mod:`.batching`, :mod:`.feedback`, :mod:`.peers` (feedback across workers), :mod:`.drift`
and :mod:`.metrics`.
"""

from mlops_operator.runtime.server.cli import configure_parser, serve_command

__all__ = ["configure_parser", "serve_command"]
