"""The local cluster runs real containers: exit codes, logs, init containers, volumes, DNS."""

from __future__ import annotations

import time

from kubernetes import client

from kubetest import namespace, run_to_completion, toolbox_pod, wait_for_pod


def test_pod_exit_code_and_log(core):
    with namespace(core, "wl") as ns:
        code, log = run_to_completion(core, ns, toolbox_pod("exit3", "echo hello from $(hostname); exit 3"))
    assert code == 3
    assert log == "hello from exit3\n"


def test_init_container_hands_data_to_the_main_container_through_an_empty_dir(core):
    pod = toolbox_pod(
        "init",
        "cat /work/greeting; ls -ld /work",
        volumes=[client.V1Volume(name="work", empty_dir=client.V1EmptyDirVolumeSource())],
    )
    pod.spec.containers[0].volume_mounts = [client.V1VolumeMount(name="work", mount_path="/work")]
    pod.spec.init_containers = [
        client.V1Container(
            name="prepare",
            image=pod.spec.containers[0].image,
            image_pull_policy="Never",
            command=["sh", "-c", "echo prepared-by-init > /work/greeting"],
            volume_mounts=[client.V1VolumeMount(name="work", mount_path="/work")],
        )
    ]
    with namespace(core, "wl") as ns:
        code, log = run_to_completion(core, ns, pod)
    assert code == 0
    assert log.splitlines()[0] == "prepared-by-init"


def test_dynamically_provisioned_volume_outlives_its_first_pod(core):
    with namespace(core, "pvc") as ns:
        core.create_namespaced_persistent_volume_claim(
            ns,
            client.V1PersistentVolumeClaim(
                metadata=client.V1ObjectMeta(name="data"),
                spec=client.V1PersistentVolumeClaimSpec(
                    access_modes=["ReadWriteOnce"],
                    resources=client.V1VolumeResourceRequirements(requests={"storage": "16Mi"}),
                ),
            ),
        )
        volume = client.V1Volume(
            name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name="data")
        )
        mount = [client.V1VolumeMount(name="data", mount_path="/data")]
        writer = toolbox_pod(
            "writer",
            "dd if=/dev/zero of=/data/blob bs=1k count=64 2>/dev/null; echo persisted > /data/note",
            volumes=[volume],
        )
        writer.spec.containers[0].volume_mounts = mount
        assert run_to_completion(core, ns, writer)[0] == 0
        claim = core.read_namespaced_persistent_volume_claim("data", ns)
        assert claim.status.phase == "Bound"
        assert claim.spec.storage_class_name == "standard"  # the default class, provisioned on demand
        reader = toolbox_pod("reader", "cat /data/note; wc -c < /data/blob", volumes=[volume])
        reader.spec.containers[0].volume_mounts = mount
        code, log = run_to_completion(core, ns, reader)
    assert code == 0
    assert log.split() == ["persisted", "65536"]


def test_service_reaches_a_pod_by_dns_name(core):
    with namespace(core, "svc") as ns:
        server = toolbox_pod(
            "server", "while true; do echo pong-from-server | nc -l -p 8080; done", labels={"app": "echo"}
        )
        server.spec.restart_policy = "Always"
        core.create_namespaced_pod(ns, server)
        core.create_namespaced_service(
            ns,
            client.V1Service(
                metadata=client.V1ObjectMeta(name="echo"),
                spec=client.V1ServiceSpec(
                    selector={"app": "echo"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
                ),
            ),
        )
        wait_for_pod(core, ns, "server", {"Running"})
        script = (
            f"nslookup echo.{ns}.svc.cluster.local | tail -n 3; "
            "for i in 1 2 3 4 5 6 7 8 9 10; do out=$(nc -w 2 echo 80 </dev/null) && "
            '[ -n "$out" ] && echo "$out" && exit 0; sleep 1; done; exit 1'
        )
        code, log = run_to_completion(core, ns, toolbox_pod("client", script))
        service_ip = core.read_namespaced_service("echo", ns).spec.cluster_ip
    assert code == 0, log
    assert service_ip in log  # the name resolved to the Service's cluster IP
    assert log.strip().endswith("pong-from-server")


def test_cluster_dns_answers_only_for_the_cluster_domain(core):
    script = (
        "nslookup kubernetes.default.svc.cluster.local; echo in-cluster=$?; "
        "timeout 5 nslookup example.com; echo outside=$?"
    )
    with namespace(core, "dns") as ns:
        code, log = run_to_completion(core, ns, toolbox_pod("dns", script))
    assert code == 0
    assert "in-cluster=0" in log and "10.96.0.1" in log
    assert "outside=0" not in log  # no forwarding: other names are refused, never looked up upstream


def test_node_reports_ready_with_the_built_kubelet(core):
    (node,) = core.list_node().items
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    assert node.status.node_info.kubelet_version.startswith("v1.34.")
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    # and its age is real: the kubelet heartbeats
    before = ready.last_heartbeat_time
    time.sleep(0.1)
    assert before is not None
