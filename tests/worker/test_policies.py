"""Session policies and the namespace rule: pure checks, then the real store enforcing them."""

from __future__ import annotations

import io
import json

import pytest
from minio.error import S3Error

from kubecircus.objectstore import layout
from kubecircus.objectstore.policy import MAX_SESSION_POLICY, collect_policy, stage_policy, uploader_policy

NS = "team-a"


@pytest.mark.parametrize(
    ("bucket", "prefix", "why"),
    [
        ("dicom", "team-a/study1/", None),
        ("dicom", "team-a/", None),
        ("other", "team-a/s/", "not an input bucket"),
        ("dicom", "team-b/s/", "read only keys under 'team-a/'"),
        ("dicom", "team-ab/s/", "read only keys under 'team-a/'"),
        ("dicom", "", "read only keys under 'team-a/'"),
        ("dicom", "team-a/../team-b/", "'.'/'..'"),
        ("dicom", "team-a/ ../team-b/", "'.'/'..'"),
        ("dicom", "team-a/*", "wildcard"),
        ("dicom", "team-a/${aws:username}/", "wildcard"),
        ("dicom", "team-a//x/", "empty path segment"),
    ],
)
def test_the_namespace_rule(bucket, prefix, why):
    refusal = layout.input_refusal(NS, bucket, prefix, ("dicom",))
    if why is None:
        assert refusal is None
    else:
        assert refusal is not None and why in refusal


def test_the_largest_job_still_gets_a_policy_within_the_store_limit():
    namespace = "n" * 63
    inputs = [("dicom", f"{namespace}/{i:02d}/" + "p" * 980 + "/") for i in range(32)]
    policy = stage_policy(namespace, inputs, "kubecircus")
    assert len(policy) <= MAX_SESSION_POLICY
    resources = json.loads(policy)["Statement"][0]["Resource"]
    assert resources == [f"arn:aws:s3:::dicom/{namespace}/*"]  # widened, but only to the namespace


def test_a_small_job_gets_exactly_its_prefixes():
    policy = json.loads(stage_policy(NS, [("dicom", "team-a/s1/"), ("dicom", "team-a/s1/x/")], "kubecircus"))
    assert policy["Statement"][0]["Resource"] == ["arn:aws:s3:::dicom/team-a/s1/*"]
    assert policy["Statement"][1]["Condition"] == {"StringLike": {"s3:prefix": ["team-a/s1/*"]}}


# --- the real store enforces them ----------------------------------------------------------------


def _put(client, bucket, key, data=b"x"):
    client.put_object(bucket_name=bucket, object_name=key, data=io.BytesIO(data), length=len(data))


def _denied(call) -> bool:
    try:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, bytes | str):
            list(result)
        if hasattr(result, "read"):
            result.read()
    except S3Error as exc:
        return exc.code == "AccessDenied"
    return False


def test_stage_credentials_read_only_their_inputs_and_their_namespace_cache(root, mint):
    for key in ("team-a/mine/1.dcm", "team-a/other-job/1.dcm", "team-b/theirs/1.dcm"):
        _put(root, "dicom", key)
    for key in ("cache/team-a/k1/complete", "cache/team-b/k2/complete", "jobs/team-a/uid-1/manifest.json"):
        _put(root, "kubecircus", key)
    stage = mint(stage_policy(NS, [("dicom", "team-a/mine/")], "kubecircus"))
    assert stage.get_object(bucket_name="dicom", object_name="team-a/mine/1.dcm").read() == b"x"
    names = [
        o.object_name for o in stage.list_objects(bucket_name="dicom", prefix="team-a/mine/", recursive=True)
    ]
    assert names == ["team-a/mine/1.dcm"]
    assert stage.get_object(bucket_name="kubecircus", object_name="cache/team-a/k1/complete").read() == b"x"
    _put(stage, "kubecircus", "cache/team-a/k3/complete")
    # another job's prefix, another namespace's inputs and cache, any job's outputs: denied
    assert _denied(lambda: stage.get_object(bucket_name="dicom", object_name="team-a/other-job/1.dcm"))
    assert _denied(lambda: stage.list_objects(bucket_name="dicom", prefix="team-a/", recursive=True))
    assert _denied(lambda: stage.get_object(bucket_name="dicom", object_name="team-b/theirs/1.dcm"))
    assert _denied(lambda: stage.get_object(bucket_name="kubecircus", object_name="cache/team-b/k2/complete"))
    assert _denied(lambda: _put(stage, "kubecircus", "cache/team-b/poison/complete"))
    assert _denied(
        lambda: stage.get_object(bucket_name="kubecircus", object_name="jobs/team-a/uid-1/manifest.json")
    )
    assert _denied(lambda: _put(stage, "dicom", "team-a/mine/2.dcm"))


def test_collect_credentials_write_only_their_job_prefix(root, mint):
    _put(root, "kubecircus", "jobs/team-a/uid-2/out/x")
    collect = mint(collect_policy(NS, "uid-1", "kubecircus"))
    _put(collect, "kubecircus", "jobs/team-a/uid-1/out/results.json")
    assert _denied(lambda: _put(collect, "kubecircus", "jobs/team-a/uid-2/out/x"))
    assert _denied(
        lambda: collect.get_object(bucket_name="kubecircus", object_name="jobs/team-a/uid-1/out/results.json")
    )
    assert _denied(lambda: _put(collect, "kubecircus", "cache/team-a/k/complete"))
    assert _denied(lambda: collect.get_object(bucket_name="dicom", object_name="team-a/mine/1.dcm"))


def test_the_store_accepts_the_largest_policy_and_it_still_confines(root, mint):
    inputs = [("dicom", f"team-a/{i:02d}/" + "p" * 200 + "/") for i in range(32)]
    stage = mint(stage_policy(NS, inputs, "kubecircus"))
    _put(root, "dicom", "team-a/anything.dcm")
    assert stage.get_object(bucket_name="dicom", object_name="team-a/anything.dcm").read() == b"x"
    assert _denied(lambda: stage.get_object(bucket_name="dicom", object_name="team-b/theirs/1.dcm"))


def test_the_operator_user_cannot_touch_other_buckets(root, operator_store):
    root.make_bucket(bucket_name="unrelated") if not root.bucket_exists(bucket_name="unrelated") else None
    _put(root, "unrelated", "secret")
    assert _denied(lambda: operator_store.get_object(bucket_name="unrelated", object_name="secret"))
    assert _denied(lambda: _put(operator_store, "dicom", "team-a/forged.dcm"))


def test_an_uploader_policy_confines_a_namespace_user(root, store_config):
    """What docs/operator.md tells an admin to do for a namespace's people."""
    from minio.credentials import StaticProvider
    from minio.minioadmin import MinioAdmin

    from kubecircus.objectstore.client import Credentials, connect

    from miniotest import ROOT_PASSWORD, ROOT_USER

    madmin = MinioAdmin(
        endpoint=store_config.endpoint,
        credentials=StaticProvider(ROOT_USER, ROOT_PASSWORD),
        secure=False,
        http_client=store_config.http(),
    )
    madmin.policy_add("upload-team-a", policy=json.loads(uploader_policy(NS, ["dicom"])))
    madmin.user_add("team-a-uploader", "team-a-uploader-secret")
    madmin.attach_policy(["upload-team-a"], user="team-a-uploader")
    uploader = connect(store_config, Credentials("team-a-uploader", "team-a-uploader-secret"))
    _put(uploader, "dicom", "team-a/new/1.dcm")
    names = [
        o.object_name
        for o in uploader.list_objects(bucket_name="dicom", prefix="team-a/new/", recursive=True)
    ]
    assert names == ["team-a/new/1.dcm"]
    assert _denied(lambda: _put(uploader, "dicom", "team-b/forged.dcm"))
    assert _denied(lambda: uploader.get_object(bucket_name="dicom", object_name="team-b/theirs/1.dcm"))
    assert _denied(
        lambda: uploader.get_object(bucket_name="kubecircus", object_name="cache/team-a/k1/complete")
    )
