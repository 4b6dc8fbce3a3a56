"""The local cluster's volume provisioner (hack/cluster/tools/hostpath-provisioner).

It runs as root beside the kubelet and removes what pods wrote, so it is tested as a hostile pod
would use it: a link planted in a volume must not lead its removal outside the volume, and a
PersistentVolume object that names another directory (anyone who may create PVs could write
one) must never have that directory removed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubetest import namespace, run_to_completion, toolbox_pod, unique

PROVISIONER = "kubecircus.io/host-path"


@pytest.fixture(scope="module")
def host_path_class(k8s) -> None:
    standard = client.StorageV1Api(k8s).read_storage_class("standard")
    (node,) = client.CoreV1Api(k8s).list_node().items
    if (node.spec.provider_id or "").startswith("kind://"):
        pytest.skip(f"kind: the default StorageClass is {standard.provisioner}'s, not the built cluster's")
    assert standard.provisioner == PROVISIONER


def _claim(name: str, **spec: object) -> client.V1PersistentVolumeClaim:
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Mi"}),
            **spec,
        ),
    )


def _wait(what: str, check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _gone(call, *args) -> bool:
    try:
        call(*args)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_a_deleted_claim_takes_its_directory_and_nothing_a_link_in_it_names(core, host_path_class, tmp_path):
    canary = tmp_path / "outside"
    (canary / "kept").mkdir(parents=True)
    (canary / "kept" / "note").write_text("must survive", encoding="utf-8")
    script = (
        f"ln -s {canary} /data/link && ln -s {canary}/kept/note /data/file-link && "
        "mkdir -p /data/locked/deep && echo x > /data/locked/deep/f && "
        "chmod 000 /data/locked/deep /data/locked && "
        # deeper than the provisioner's 1,024 descriptors: a removal holding one per level fails
        "cd /data && i=0 && while [ $i -lt 1500 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done"
    )
    with namespace(core, "vol") as ns:
        core.create_namespaced_persistent_volume_claim(ns, _claim("data"))
        pod = toolbox_pod(
            "writer",
            script,
            volumes=[
                client.V1Volume(
                    name="data",
                    persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name="data"),
                )
            ],
            security_context=client.V1PodSecurityContext(run_as_user=65532, run_as_non_root=True),
        )
        pod.spec.containers[0].volume_mounts = [client.V1VolumeMount(name="data", mount_path="/data")]
        code, log = run_to_completion(core, ns, pod)
        assert code == 0, log
        claim = core.read_namespaced_persistent_volume_claim("data", ns)
        volume = core.read_persistent_volume(claim.spec.volume_name)
        assert volume.metadata.annotations["pv.kubernetes.io/provisioned-by"] == PROVISIONER
        directory = Path(volume.spec.host_path.path)
        assert (directory / "link").is_symlink() and (directory / "locked").is_dir()
        core.delete_namespaced_pod("writer", ns, grace_period_seconds=0)
        _wait("the writer pod to go", lambda: _gone(core.read_namespaced_pod, "writer", ns))
        core.delete_namespaced_persistent_volume_claim("data", ns)
        _wait("the volume to be removed", lambda: _gone(core.read_persistent_volume, volume.metadata.name))
    assert not directory.exists()
    assert (canary / "kept" / "note").read_text(encoding="utf-8") == "must survive"


def test_a_volume_naming_another_directory_is_never_removed(core, host_path_class, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data").write_text("precious", encoding="utf-8")
    name = unique("forged")
    with namespace(core, "vol") as ns:
        forged = core.create_persistent_volume(
            client.V1PersistentVolume(
                metadata=client.V1ObjectMeta(
                    name=name, annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER}
                ),
                spec=client.V1PersistentVolumeSpec(
                    capacity={"storage": "1Mi"},
                    access_modes=["ReadWriteOnce"],
                    persistent_volume_reclaim_policy="Delete",
                    storage_class_name="standard",
                    host_path=client.V1HostPathVolumeSource(path=str(victim), type="Directory"),
                    claim_ref=client.V1ObjectReference(namespace=ns, name="claim"),
                ),
            )
        )
        try:
            core.create_namespaced_persistent_volume_claim(ns, _claim("claim", volume_name=name))
            bound = lambda: core.read_persistent_volume(name).status.phase == "Bound"  # noqa: E731
            _wait("the forged volume to bind", bound)
            core.delete_namespaced_persistent_volume_claim("claim", ns)

            def refused() -> bool:
                events = core.list_event_for_all_namespaces(
                    field_selector=f"involvedObject.uid={forged.metadata.uid}"
                ).items
                return any(
                    event.reason == "VolumeFailedDelete"
                    and "does not name this provisioner's directory" in event.message
                    for event in events
                )

            _wait("the provisioner to refuse the deletion", refused)
            assert (victim / "data").read_text(encoding="utf-8") == "precious"
            assert core.read_persistent_volume(name).status.phase in {"Released", "Failed"}
        finally:
            core.delete_persistent_volume(name)
