"""Data and results on S3: every stage reads and writes s3:// URIs through pyarrow, here against moto on 127.0.0.1."""

import uuid

import boto3
import numpy as np
import pytest

from raysweep.feature_matrix import read_feature_matrix, write_feature_matrix


@pytest.fixture
def bucket(s3_endpoint):
    """A fresh, empty bucket on the moto server; yields its boto3 client and name."""
    client = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    name = f"raysweep-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield client, name


def _uri(s3_endpoint, bucket_name, key):
    return f"s3://{bucket_name}/{key}?endpoint_override={s3_endpoint}&scheme=http"


def _keys(client, bucket_name, prefix=""):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_feature_matrix_round_trips_through_the_bucket(s3_endpoint, bucket):
    client, name = bucket
    rng = np.random.default_rng(0)
    pid = np.arange(50, dtype=np.int64)
    values = rng.normal(size=(50, 3)).astype(np.float32)
    metadata = {"source": "test", "scaling": {"kind": "none"}}

    write_feature_matrix(_uri(s3_endpoint, name, "features/matrix.parquet"), pid, values, ["a", "b", "c"], metadata)
    matrix = read_feature_matrix(_uri(s3_endpoint, name, "features/matrix.parquet"))

    assert _keys(client, name) == ["features/matrix.parquet"]
    np.testing.assert_array_equal(matrix.pid, pid)
    np.testing.assert_array_equal(matrix.values, values)
    assert matrix.columns == ["a", "b", "c"]
    assert matrix.metadata == metadata


def test_missing_feature_matrix_in_the_bucket_names_the_uri(s3_endpoint, bucket):
    _, name = bucket
    uri = _uri(s3_endpoint, name, "absent.parquet")
    with pytest.raises(FileNotFoundError, match="absent.parquet"):
        read_feature_matrix(uri)
