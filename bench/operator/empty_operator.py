"""The floor: a kopf operator that watches what mlops-operator watches, with the same kopf
settings and the same kind of triggers (``on.event`` handlers, the same label filters), and
does nothing in them. What it costs is what the framework costs; the benchmark runs it over
the same objects as the real operator and reports ours/floor.

Our indexes, work queues and reconciles are left out: they are what ours costs above the
framework. Like ours, it registers no create/update/resume handlers, so kopf writes nothing.

Run: ``python empty_operator.py --namespace NS`` with the sandbox's KUBECONFIG.
"""

from __future__ import annotations

import argparse
import logging
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


@kopf.on.event(GROUP, VERSION, "trainingjobs")
@kopf.on.event(GROUP, VERSION, "modelversions")
@kopf.on.event(GROUP, VERSION, "inferenceservices")
@kopf.on.event("batch", "v1", "jobs", labels={names.LABEL_TRAININGJOB: kopf.PRESENT})
@kopf.on.event("apps", "v1", "deployments", labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT})
@kopf.on.event("", "v1", "services", labels={names.LABEL_INFERENCESERVICE: kopf.PRESENT})
async def seen(**_: Any) -> None:
    """Nothing: the floor."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args()
    kopf.configure(verbose=False, log_prefix=True)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # as mlops_operator.main.run
    kopf.run(standalone=True, clusterwide=False, namespaces=[args.namespace], memo=kopf.Memo())
    return 0


if __name__ == "__main__":
    sys.exit(main())
