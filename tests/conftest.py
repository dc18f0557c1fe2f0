"""Shared fixtures. Ray starts for real (a local single-node cluster), once per test session."""

import os

import pytest
import ray  # a hard dependency: a broken install must fail the suite, not skip its Ray tests

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Tests never reach AWS: dummy credentials for boto3 and pyarrow, set before Ray starts so its workers inherit them.
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_EC2_METADATA_DISABLED": "true"})


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance with 2 CPUs, shared by the tests that need one."""
    if not ray.is_initialized():
        # address="local": a new instance, never another process's Ray that happens to run on this machine.
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 (pyarrow's S3 client is not intercepted in-process); yields "host:port"."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def generated_mpd(tmp_path_factory):
    """1,000 generated playlists (5 planted profiles) and their ingest output, built once for the session.

    Returns the folder holding ``mpd/`` (slices, track audio features, planted profiles) and ``dataset/``.
    Tests read it and write their outputs elsewhere.
    """
    from raysweep.ingest import ingest
    from raysweep.synth import generate

    folder = tmp_path_factory.mktemp("generated_mpd")
    generate(folder / "mpd", 1000, slice_size=500, profiles=5, seed=0)
    ingest(folder / "mpd" / "data", folder / "dataset", workers=1)
    return folder
