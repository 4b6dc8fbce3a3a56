"""kind-config.yaml: kind cannot run on the build machine (no Docker), so the config is decoded
strictly with kind's own v1alpha4 Go types (hack/cluster/tools/kindcheck, built by
`make cluster-up`) and checked against the chart and the built-in cluster it stands in for."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .test_chart import CHART, _render
from kubetest import CACHE_BIN

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "kind-config.yaml"
KINDCHECK = CACHE_BIN / "kindcheck"
pytestmark = pytest.mark.tools


def kindcheck(path: Path) -> subprocess.CompletedProcess[str]:
    assert KINDCHECK.exists(), f"{KINDCHECK} is missing: `make cluster-up` builds it from its Go module"
    return subprocess.run(
        [str(KINDCHECK), str(path)], capture_output=True, text=True, encoding="utf-8", check=False
    )


def test_kinds_own_types_accept_the_config():
    done = kindcheck(CONFIG)
    assert done.returncode == 0, done.stderr
    decoded = yaml.safe_load(done.stdout)
    assert decoded["nodes"][0]["extraPortMappings"], decoded  # the port mapping survived decoding


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("hostPort: 30900", "hostPorts: 30900"),  # a misspelt field
        ("containerPort: 30900", "containerPort: thirty"),  # a wrong type
        ("kind: Cluster", "kind: Clusters"),
    ],
)
def test_the_checker_refuses_a_broken_config(tmp_path, old, new):
    broken = tmp_path / "kind-config.yaml"
    broken.write_text(CONFIG.read_text(encoding="utf-8").replace(old, new, 1))
    assert kindcheck(broken).returncode == 1


def test_the_store_is_mapped_to_the_laptops_loopback_at_the_charts_node_port():
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    (mapping,) = config["nodes"][0]["extraPortMappings"]
    assert mapping["listenAddress"] == "127.0.0.1"  # never the LAN
    docs = _render("-f", str(CHART / "values-local.yaml"))
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "kubecircus-minio"]
    assert service["spec"]["type"] == "NodePort"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 9000 and port["nodePort"] == mapping["containerPort"] == mapping["hostPort"]


def test_the_pod_and_service_ranges_are_the_built_in_clusters():
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    lib = (ROOT / "hack" / "cluster" / "lib.sh").read_text()
    assert config["networking"]["podSubnet"] == re.search(r"^POD_CIDR=(\S+)", lib, re.M).group(1)
    assert config["networking"]["serviceSubnet"] == re.search(r"^SERVICE_CIDR=(\S+)", lib, re.M).group(1)
