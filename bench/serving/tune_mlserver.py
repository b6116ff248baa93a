"""Find MLServer's best adaptive-batching settings for the serving benchmark: a grid of
``max_batch_size`` × ``max_batch_time`` with parallel workers 0 and one per core, closed loop
at 32 connections, both models, 1-row requests (where batching matters most). Prints a
table; ``contenders.py`` uses the winner. Needs the environments and models that
``run.py`` prepares (run it once first).

Run from the repository root: ``.venv/bin/python -m bench.serving.tune_mlserver``."""

from __future__ import annotations

import itertools
import sys

from bench import common
from bench.serving import load
from bench.serving.contenders import Contender, ModelFiles, Server, ensure_venv
from bench.serving.run import WORKDIR, log

SIZES = (8, 16, 32, 64, 128)
TIMES_MS = (0.5, 1.0, 2.0, 5.0, 10.0)


def main() -> int:
    python = ensure_venv("mlserver", WORKDIR / "venvs")
    cores = common.machine()["cores"] or 2
    rows = []
    for model_name in ("lr", "rf"):
        model = ModelFiles(model_name, WORKDIR / "models" / model_name)
        body = WORKDIR / f"body-{model_name}-1.json"
        grid = [(0, 0.0)] + list(itertools.product(SIZES, TIMES_MS))
        for workers, (size, ms) in itertools.product((0, cores), grid):
            contender = Contender(
                f"mlserver-pw{workers}-b{size}-{ms:g}ms", "mlserver", workers, size, ms
            )
            server = Server(contender, model, python, WORKDIR / "tune")
            try:
                server.wait_ready()
                load.closed_loop(server.infer_url, body, 32, 1)
                run = load.closed_loop(server.infer_url, body, 32, 3)
            finally:
                server.stop()
            log(f"{model_name} {contender.name}: {run.rps:,.0f} req/s p99 {run.p99_ms:.1f} ms")
            rows.append(
                [
                    model_name,
                    workers,
                    size or "off",
                    f"{ms:g}",
                    f"{run.rps:,.0f}",
                    f"{run.p99_ms:.1f}",
                    run.errors,
                ]
            )
    print(
        common.markdown_table(
            [
                "model",
                "workers",
                "max_batch_size",
                "max_batch_time ms",
                "req/s",
                "p99 ms",
                "errors",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
