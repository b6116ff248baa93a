"""The floor: a kopf operator that watches what mlops-operator watches, with the same kopf
settings and the same handler registrations (create, resume, spec update, events), and does
nothing in them. What it costs is what the framework costs; the benchmark runs it over the
same objects as the real operator and reports ours/floor.

Timers and daemons are left out: which objects they run for depends on statuses only the real
operator writes, so their cost is counted as ours.

Run: ``python empty_operator.py --namespace NS`` with the sandbox's KUBECONFIG.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import kopf

from mlops_operator import kopf_settings
from mlops_operator.api.base import GROUP, VERSION
from mlops_operator.kube import names


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """The settings of ``mlops_operator.main.configure``, nothing else."""
    kopf_settings.apply(settings)


for _plural in ("trainingjobs", "modelversions", "inferenceservices"):

    @kopf.on.create(GROUP, VERSION, _plural)
    @kopf.on.resume(GROUP, VERSION, _plural)
    @kopf.on.update(GROUP, VERSION, _plural, field="spec")
    async def changed(**_: Any) -> None:
        """Nothing: the floor."""


@kopf.on.event(GROUP, VERSION, "inferenceservices")
@kopf.on.event(GROUP, VERSION, "modelversions")
@kopf.on.event("apps", "v1", "deployments", labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT})
@kopf.on.event("batch", "v1", "jobs", labels={names.LABEL_TRAININGJOB: kopf.PRESENT})
async def seen(**_: Any) -> None:
    """Nothing: the floor."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args()
    kopf.configure(verbose=False, log_prefix=True)
    kopf.run(standalone=True, clusterwide=False, namespaces=[args.namespace], memo=kopf.Memo())
    return 0


if __name__ == "__main__":
    sys.exit(main())
