"""NetworkPolicy is enforced for real, and Pod Security admission refuses privileged pods.

kube-router applies a pod's rules once it sees the pod's address: here about half a second after
the pod starts (measured by ``test_enforcer.py``). These tests check the steady state, so their
probes first wait :data:`ENFORCED_AFTER` seconds; the plug-in pod does not wait on time but on
its ``prepare`` step's proof.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from kubetest import (
    API_SERVICE_IP,
    DNS_SERVICE_IP,
    NODE_IP,
    api_error,
    deny_all,
    namespace,
    run_to_completion,
    tcp_peer,
    toolbox_pod,
    wait_for_pod,
)

#: Seconds after which a new pod's rules are surely in place (measured: about 0.5 s).
ENFORCED_AFTER = 3


def _probe_script(targets: dict[str, tuple[str, int]]) -> str:
    """After ENFORCED_AFTER seconds, print name=ok|blocked for a TCP connection to each target,
    then UDP DNS."""
    lines = [f"sleep {ENFORCED_AFTER}"]
    lines += [
        f"if nc -w 3 {host} {port} -e /bin/true </dev/null 2>/dev/null; then echo {name}=ok; "
        f"else echo {name}=blocked; fi"
        for name, (host, port) in targets.items()
    ]
    lines.append(
        f"if timeout 5 nslookup kubernetes.default.svc.cluster.local {DNS_SERVICE_IP} >/dev/null 2>&1; "
        "then echo dns-udp=ok; else echo dns-udp=blocked; fi"
    )
    return "; ".join(lines)


def _results(log: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in log.split() if "=" in line)


@pytest.fixture
def policed_namespace(core, k8s):
    """A namespace with a peer pod serving TCP and a deny-all policy for pods labelled isolated=yes."""
    with namespace(core, "np") as ns:
        deny_all(k8s, ns)
        yield ns, tcp_peer(core, ns)


def test_deny_all_blocks_api_server_object_store_dns_and_pods_while_an_unpoliced_twin_connects(
    core, policed_namespace, minio_server
):
    ns, peer_ip = policed_namespace
    minio_host, minio_port = minio_server
    targets = {
        "api-service": (API_SERVICE_IP, 443),
        "api-node": (NODE_IP, 6443),
        "minio": (minio_host, minio_port),
        "dns-tcp": (DNS_SERVICE_IP, 53),
        "pod": (peer_ip, 9090),
    }
    script = _probe_script(targets)
    _, open_log = run_to_completion(core, ns, toolbox_pod("free", script, labels={"isolated": "no"}))
    _, closed_log = run_to_completion(core, ns, toolbox_pod("jailed", script, labels={"isolated": "yes"}))
    everything = {*targets, "dns-udp"}
    assert _results(open_log) == dict.fromkeys(everything, "ok"), open_log
    assert _results(closed_log) == dict.fromkeys(everything, "blocked"), closed_log


def test_deny_all_also_blocks_traffic_into_the_pod(core, policed_namespace):
    ns, _ = policed_namespace
    server = toolbox_pod(
        "jailed-server", "while true; do echo hi | nc -l -p 9090; done", labels={"isolated": "yes"}
    )
    server.spec.restart_policy = "Always"
    core.create_namespaced_pod(ns, server)
    ip = wait_for_pod(core, ns, "jailed-server", {"Running"}).status.pod_ip
    probe = (
        f"sleep {ENFORCED_AFTER}; "
        f"if nc -w 3 {ip} 9090 -e /bin/true </dev/null; then echo in=ok; else echo in=blocked; fi"
    )
    _, log = run_to_completion(core, ns, toolbox_pod("knocker", probe))
    assert _results(log) == {"in": "blocked"}


def test_an_allow_rule_opens_exactly_what_it_names(core, k8s, policed_namespace):
    ns, peer_ip = policed_namespace
    client.NetworkingV1Api(k8s).create_namespaced_network_policy(
        ns,
        client.V1NetworkPolicy(
            metadata=client.V1ObjectMeta(name="allow-peer"),
            spec=client.V1NetworkPolicySpec(
                pod_selector=client.V1LabelSelector(match_labels={"isolated": "yes"}),
                policy_types=["Egress"],
                egress=[
                    client.V1NetworkPolicyEgressRule(
                        to=[
                            client.V1NetworkPolicyPeer(
                                pod_selector=client.V1LabelSelector(match_labels={"role": "peer"})
                            )
                        ],
                        ports=[client.V1NetworkPolicyPort(port=9090, protocol="TCP")],
                    )
                ],
            ),
        ),
    )
    script = _probe_script({"pod": (peer_ip, 9090), "api-node": (NODE_IP, 6443)})
    _, log = run_to_completion(core, ns, toolbox_pod("partly", script, labels={"isolated": "yes"}))
    assert _results(log) == {"pod": "ok", "api-node": "blocked", "dns-udp": "blocked"}, log


def test_restricted_pod_security_refuses_a_privileged_pod(core):
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    with namespace(core, "psa", labels=labels) as ns:
        privileged = toolbox_pod("root", "id")
        privileged.spec.containers[0].security_context = client.V1SecurityContext(privileged=True)
        error = api_error(core.create_namespaced_pod, ns, privileged)
        message = json.loads(error.body)["message"]
        assert error.status == 403
        assert 'violates PodSecurity "restricted:' in message and "privileged" in message
        compliant = toolbox_pod(
            "nobody",
            "id -u",
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=65534,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
        )
        compliant.spec.containers[0].security_context = client.V1SecurityContext(
            allow_privilege_escalation=False, capabilities=client.V1Capabilities(drop=["ALL"])
        )
        code, log = run_to_completion(core, ns, compliant)
    assert (code, log.strip()) == (0, "65534")
