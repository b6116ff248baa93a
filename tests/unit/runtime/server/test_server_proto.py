"""The gRPC modules in runtime/server/proto are generated from the .proto beside them and must
never be stale (``make proto`` regenerates them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
SOURCE_ROOT = REPO / "operator"
PROTO = Path("mlops_operator/runtime/server/proto/open_inference.proto")
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def test_checked_in_grpc_modules_match_the_proto(tmp_path: Path) -> None:
    # The same command as `make proto`, into a scratch directory; the mypy plugins are
    # scripts beside this interpreter.
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{SOURCE_ROOT}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            f"--mypy_grpc_out={tmp_path}",
            str(SOURCE_ROOT / PROTO),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    stem = str(PROTO.with_suffix(""))
    for suffix in GENERATED:
        generated = tmp_path / f"{stem}{suffix}"
        checked_in = SOURCE_ROOT / f"{stem}{suffix}"
        assert checked_in.read_text() == generated.read_text(), (
            f"{checked_in.name} is stale: run `make proto` and commit the result"
        )
