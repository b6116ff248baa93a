"""``python -m mlops_sandbox``."""

from mlops_sandbox.cli import main

main()
