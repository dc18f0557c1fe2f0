"""cluster.yaml: Ray's own config checks, then the security and cost settings the README promises."""

import copy
import json
import re
from pathlib import Path

import boto3
import jsonschema
import pytest
import yaml
from moto import mock_aws
from ray.autoscaler._private.aws.config import bootstrap_aws
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
BUCKET_ARN = "arn:aws:s3:::RAYSWEEP_BUCKET"


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def prepared(raw):
    """The config as `ray up` sees it: merged with Ray's AWS defaults, then validated."""
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def _worker_types(config):
    return {name: node for name, node in config["available_node_types"].items()
            if name != config["head_node_type"]}


def test_ray_validation_passes(prepared):
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_ray_validation_rejects_an_unknown_field(raw):
    # The schema in the wheel forbids extra keys in a node type: validation is not vacuous.
    broken = copy.deepcopy(raw)
    broken["available_node_types"]["worker_spot"]["spot"] = True
    with pytest.raises(jsonschema.ValidationError, match="spot"):
        validate_config(prepare_config(broken))


def test_ray_bootstrap_opens_only_ssh_to_the_outside(prepared, tmp_path, monkeypatch):
    # What `ray up` does first, run against moto's in-process EC2: pick subnets, create the key pair (written
    # under HOME) and the cluster's security group with the rules Ray authorizes.
    monkeypatch.setenv("HOME", str(tmp_path))
    with mock_aws():
        bootstrapped = bootstrap_aws(copy.deepcopy(prepared))
        groups = boto3.client("ec2", region_name=prepared["provider"]["region"]).describe_security_groups()
    cluster_group = [g for g in groups["SecurityGroups"] if g["GroupName"] == "ray-autoscaler-raysweep"]
    assert len(cluster_group) == 1
    group_id = cluster_group[0]["GroupId"]
    for rule in cluster_group[0]["IpPermissions"]:
        if rule["IpRanges"] or rule["Ipv6Ranges"] or rule["PrefixListIds"]:
            assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22), rule
        else:
            assert [pair["GroupId"] for pair in rule["UserIdGroupPairs"]] == [group_id], rule
    for name, node in bootstrapped["available_node_types"].items():
        assert node["node_config"]["SecurityGroupIds"] == [group_id], name
    # The named instance profiles were used: Ray created no role of its own (it would have EC2/S3 full access).
    assert bootstrapped["head_node"] == {}


def test_dashboard_is_bound_to_localhost(prepared):
    # Ray's AWS defaults start the head with --dashboard-host=0.0.0.0 (CVE-2023-48022).
    start = " ".join(prepared["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start
    every_command = prepared["head_start_ray_commands"] + prepared["worker_start_ray_commands"]
    assert not any("0.0.0.0" in command for command in every_command)


def test_head_runs_no_trials(prepared):
    head = prepared["available_node_types"][prepared["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    assert "--num-cpus=0" in " ".join(prepared["head_start_ray_commands"])
    assert head["max_workers"] == 0


def test_spot_and_on_demand_workers_scale_from_zero(prepared):
    workers = _worker_types(prepared)
    markets = {name: node["node_config"].get("InstanceMarketOptions", {}).get("MarketType", "on-demand")
               for name, node in workers.items()}
    assert sorted(markets.values()) == ["on-demand", "spot"]
    for name, node in workers.items():
        assert 0 == node["min_workers"] < node["max_workers"] <= prepared["max_workers"], name


def test_idle_workers_are_released(prepared):
    assert 0 < prepared["idle_timeout_minutes"] <= 10
    assert prepared["provider"]["cache_stopped_nodes"] is False


def test_no_credentials_in_the_file(raw):
    text = CLUSTER_YAML.read_text()
    assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text)
    assert not re.search(r"aws_secret_access_key|aws_session_token|PRIVATE KEY", text, re.IGNORECASE)
    assert set(raw["auth"]) == {"ssh_user"}
    assert not any(".aws" in str(local) for local in raw["file_mounts"].values())


def test_every_node_has_a_limited_instance_profile(prepared):
    # Without one, Ray creates a head role with AmazonEC2FullAccess and AmazonS3FullAccess.
    profiles = {name: node["node_config"]["IamInstanceProfile"]["Name"]
                for name, node in prepared["available_node_types"].items()}
    assert profiles.pop(prepared["head_node_type"]) == "raysweep-head"
    assert set(profiles.values()) == {"raysweep-worker"}


def test_setup_installs_raysweep_at_the_locked_versions(raw):
    # Every file the install reads is mounted, from the repository (paths relative to its root).
    mounted = {remote.removeprefix("/home/ubuntu/raysweep/"): local for remote, local in raw["file_mounts"].items()}
    needed = ["raysweep", "pyproject.toml", "README.md", "constraints.txt", "cluster-constraints.txt"]
    assert {name: mounted.get(name) for name in needed} == {name: f"./{name}" for name in needed}
    assert all((ROOT / name).exists() for name in needed)
    installs = [command for command in raw["setup_commands"] if "pip install" in command]
    assert installs, "no pip install in setup_commands"
    for command in installs:
        assert "-c ~/raysweep/constraints.txt -c ~/raysweep/cluster-constraints.txt" in command
    assert any(command.rstrip().endswith("~/raysweep") for command in installs)
    assert re.search(r"^ray==", (ROOT / "constraints.txt").read_text(), re.MULTILINE)


def test_cluster_constraints_pin_exactly_and_do_not_contradict_the_lock():
    def pins(name):
        lines = (ROOT / name).read_text().splitlines()
        return dict(line.split("==") for line in lines if line and not line.startswith("#"))

    lock, cluster = pins("constraints.txt"), pins("cluster-constraints.txt")
    assert cluster and all(version for version in cluster.values())
    assert not {n.lower() for n in lock} & {n.lower() for n in cluster}


def test_s3_policy_is_limited_to_one_bucket():
    policy = json.loads((ROOT / "docs" / "iam-policy.json").read_text())
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        assert all(action.startswith("s3:") and "*" not in action for action in actions), actions
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        assert set(resources) <= {BUCKET_ARN, BUCKET_ARN + "/*"}, resources


def test_head_policy_grants_no_storage_and_passes_only_the_worker_role():
    policy = json.loads((ROOT / "docs" / "iam-head-policy.json").read_text())
    actions = [action for statement in policy["Statement"] for action in statement["Action"]]
    assert not any(action.startswith("s3:") or action.endswith(":*") for action in actions), actions
    pass_role = [statement for statement in policy["Statement"] if "iam:PassRole" in statement["Action"]]
    assert len(pass_role) == 1
    assert all(resource.endswith("/raysweep-worker") for resource in pass_role[0]["Resource"])
