"""Children's names and ownership: what the operator may call its own (issue 8, item 4)."""

from __future__ import annotations

import re

import pytest

from kubecircus.operator import builders
from kubecircus.operator.builders import child_name
from kubecircus.operator.decide import refused
from kubecircus.operator.kube import owned_by
from kubecircus.operator.observe import Children

from jobbuilders import CONFIG, NOW, JobBuilder, plugin, statuses

#: A DNS-1123 label: a valid hostname, and short enough for node-local provisioners' paths.
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUFFIXES = ("ws", "isolation", "stage", "run", "collect", "stage-store", "collect-store")
UID = "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "x" * 253,  # the longest PluginJob name the API server takes
        ("segment." * 40)[:252] + "z",  # dots near the cut
        "a" * 39 + "-" + "b" * 23,  # a dash exactly where the cut falls
        "a" * 39 + "." + "b" * 23,
    ],
)
def test_every_child_name_is_valid_and_carries_the_uid_whatever_the_job_name(name):
    job = JobBuilder(name, uid=UID).build()
    names = [child_name(job, suffix) for suffix in SUFFIXES]
    for suffix, child in zip(SUFFIXES, names, strict=True):
        assert len(child) <= 63 and LABEL.match(child), child
        assert child.endswith(f"-6f1c2d3e-{suffix}")
    assert len(set(names)) == len(names)
    labels = builders.labels(job, "run")
    assert all(len(v) <= 63 and re.match(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$", v) for v in labels.values())


def test_a_job_created_again_under_its_name_never_meets_its_predecessors_children():
    first = JobBuilder("scan", uid="11111111-0000").build()
    second = JobBuilder("scan", uid="22222222-0000").build()
    assert {child_name(first, s) for s in SUFFIXES}.isdisjoint({child_name(second, s) for s in SUFFIXES})


@pytest.mark.parametrize(
    ("refs", "owned"),
    [
        ([{"uid": UID, "controller": True}], True),
        ([{"uid": UID, "controller": False}], False),  # owned, but someone else controls it
        ([{"uid": "another-job", "controller": True}], False),
        ([], False),  # a labelled look-alike with no owner
        (None, False),
    ],
)
def test_only_objects_the_job_controls_are_its_own(refs, owned):
    assert owned_by({"name": "x", "ownerReferences": refs}, UID) is owned


def test_a_child_name_taken_by_someone_elses_object_fails_the_job_as_a_name_conflict():
    job = JobBuilder("j").phase("Staging").build()
    message = f"PersistentVolumeClaim {child_name(job, 'ws')} already exists ... does not belong to this job"
    plan = refused(job, plugin(), Children(), CONFIG, NOW, "PersistentVolumeClaim", message, True)
    (patch,) = statuses(plan.actions)
    assert (patch["phase"], patch["reason"]) == ("Failed", "NameConflict")
    assert child_name(job, "ws") in patch["message"]
    # nothing of the other object's is touched: no claim is deleted, since none is the job's
    deleted = [a for a in plan.actions if type(a).__name__ == "Delete"]
    assert all(a.kind != "PersistentVolumeClaim" for a in deleted)
