"""Upload the datasets the example TrainingJobs train on to your bucket.

    pip install 'mlops-operator[runtime]'     # scikit-learn, pandas, pyarrow, boto3
    python examples/upload-datasets.py --bucket mlops-artifacts

Writes s3://<bucket>/<prefix>/breast-cancer.csv and .../diabetes.parquet (scikit-learn's
datasets, with the label in a ``target`` column) and .../churn.parquet (a raw table made up
here: text categories, booleans, gaps and a yes/no label). The examples read them from
s3://mlops-artifacts/datasets/; with another bucket or prefix the script prints the command
that points the examples there. Credentials and endpoint come from the usual AWS variables
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for MinIO, or a profile).
"""

from __future__ import annotations

import argparse
import io
import sys

EXAMPLE_LOCATION = "s3://mlops-artifacts/datasets/"
"""Where examples/trainingjob-*.yaml read their datasets."""


def datasets() -> dict[str, bytes]:
    """The example datasets, by file name, as the bytes to upload."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    csv = io.StringIO()
    load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
    parquet = io.BytesIO()
    load_diabetes(as_frame=True).frame.to_parquet(parquet, index=False)
    return {
        "breast-cancer.csv": csv.getvalue().encode(),
        "diabetes.parquet": parquet.getvalue(),
        "churn.parquet": churn(),
    }


def churn(rows: int = 2000, seed: int = 7) -> bytes:
    """A raw customer table as Parquet, the same on every run: an id, text and numeric
    categories, a boolean, numbers with gaps, and ``churned`` (``yes``/``no``) that depends
    on tenure, charges and plan."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    plan = rng.choice([10, 20, 30], rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], rows).astype(object)
    tenure = rng.gamma(2.0, 12.0, rows).round(1)
    charges = (20 + plan * 1.5 + rng.normal(0, 8, rows)).round(2)
    partner = rng.random(rows) < 0.45
    score = 2.5 - 0.15 * tenure + 0.08 * (charges - 50) - 1.5 * partner + 1.0 * (plan == 10)
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-score)), "yes", "no")
    region[rng.random(rows) < 0.05] = None
    tenure[rng.random(rows) < 0.04] = np.nan
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(rows)],
            "plan_code": plan,
            "region": region,
            "tenure_months": tenure,
            "monthly_charges": charges,
            "has_partner": partner,
            "churned": churned,
        }
    )
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Upload, then say where the files went; 1 when the bucket cannot be written."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", default="mlops-artifacts", help="bucket to upload to")
    parser.add_argument("--prefix", default="datasets", help="key prefix (default: datasets)")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)")
    args = parser.parse_args(argv)

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client("s3", endpoint_url=args.endpoint_url)
    prefix = args.prefix.strip("/")
    location = f"s3://{args.bucket}/{prefix + '/' if prefix else ''}"
    try:
        for name, body in datasets().items():
            key = f"{prefix}/{name}" if prefix else name
            s3.put_object(Bucket=args.bucket, Key=key, Body=body)
            print(f"uploaded s3://{args.bucket}/{key} ({len(body)} bytes)")
    except (BotoCoreError, ClientError) as exc:
        print(f"upload-datasets: cannot write to s3://{args.bucket}/: {exc}", file=sys.stderr)
        return 1
    if location != EXAMPLE_LOCATION:
        print(
            "the examples read from "
            f"{EXAMPLE_LOCATION}; point them here with:\n"
            f"  sed -i 's#{EXAMPLE_LOCATION}#{location}#' examples/trainingjob-*.yaml"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
