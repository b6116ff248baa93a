"""mlops-operator: train, register, serve, monitor and roll back models on Kubernetes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlops-operator")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
