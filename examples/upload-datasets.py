"""Upload the datasets the example TrainingJobs train on to your bucket.

    pip install 'mlops-operator[runtime]'     # scikit-learn, pandas, pyarrow, boto3
    python examples/upload-datasets.py --bucket mlops-artifacts

Writes s3://<bucket>/<prefix>/breast-cancer.csv and .../diabetes.parquet (scikit-learn's
datasets, with the label in a ``target`` column). The examples read them from
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
    return {"breast-cancer.csv": csv.getvalue().encode(), "diabetes.parquet": parquet.getvalue()}


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
