"""kopf handlers: thin. They only notice changes and hand the job to the engine.

No kopf progress or diff-base is stored on PluginJobs (only event handlers are used), so the
objects carry no kopf annotations or finalizers: uninstalling the operator never leaves
PluginJobs stuck in deletion.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import kopf

from .api import GROUP, VERSION
from .builders import JOB_UID, ROLE

log = logging.getLogger(__name__)
ENGINE: Any = None
CHILD_POD_SELECTOR = f"{JOB_UID},{ROLE}"
#: A PluginJob name: a DNS subdomain of at most 253 characters.
JOB_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)  # set by main.run() before kopf starts


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True  # leadership is the Lease's job (leader.py)
    settings.posting.level = logging.WARNING
    # every call has a limit: a hung request or a silent watch is dropped and made again
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    # the API server filters pods: the operator receives only its children's events, never
    # every pod of the cluster (the handler's own label filter would run on the client)
    settings.watching.label_selectors["", "v1", "pods"] = CHILD_POD_SELECTOR
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubecircus.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="kubecircus.io")


def _reconcile(namespace: str, name: str, seen: dict[str, Any] | None = None) -> None:
    """kopf does not retry event handlers, and none is needed: the scheduler loop reconciles
    every unfinished job each ``reconcile_interval``. Errors are judged in one place,
    ``Engine.reconcile_safely``."""
    ENGINE.reconcile_safely(namespace, name, seen)


@kopf.on.event(GROUP, VERSION, "pluginjobs")
def job_changed(name: str, namespace: str, type: str | None, body: kopf.Body, **_: Any) -> None:
    if type == "DELETED" or parked(dict(body)):
        return
    _reconcile(namespace, name, dict(body))


def parked(body: dict[str, Any]) -> bool:
    """A job that waits in the queue and stays so: the event itself says all there is, and the
    scheduler round (which reads every job in one listing) admits or refuses it. Reconciling it
    here would cost a read of the job, its Plugin and three listings per event: a thousand
    submitted jobs would mean thousands of requests for nothing."""
    from .api import PluginJob
    from .engine import waiting

    return bool(body.get("status")) and waiting(PluginJob.from_body(body))


@kopf.on.event("", "v1", "pods", labels={JOB_UID: kopf.PRESENT, ROLE: kopf.PRESENT})
def child_pod_changed(namespace: str, annotations: kopf.Annotations, **_: Any) -> None:
    job = annotations.get("kubecircus.io/job")
    if job and JOB_NAME.fullmatch(job):  # anyone who may label a pod can write this: check it
        _reconcile(namespace, job)


@kopf.on.event(GROUP, VERSION, "plugins")
def plugin_changed(**_: Any) -> None:
    ENGINE.wake.set()  # a new or changed Plugin may let queued jobs in
