"""I/O at the edge: reading a job's world from the API server and applying decided actions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from . import builders
from .actions import Create, Delete, Event, PatchStatus, ShortenDeadline, Warn
from .api import GROUP, VERSION, Plugin, PluginJob
from .observe import Children, PodView
from .steps import run_log_tail

log = logging.getLogger(__name__)
#: How long a shared object seen to exist is taken to still exist (see ``Kube._standing``).
STANDING_SECONDS = 60.0


class Conflict(Exception):
    """The job changed under us (resourceVersion moved); decide again from a fresh read."""


class Refused(Exception):
    """The API server refused to create a child (quota, Pod Security, an admission policy or
    webhook), or its name is taken by an object that is not the job's (``name_conflict``): the
    decision is taken again knowing why (``decide.refused``)."""

    def __init__(self, kind: str, name: str, message: str, name_conflict: bool = False) -> None:
        super().__init__(f"{kind} {name}: {message}")
        self.kind, self.name, self.message = kind, name, message
        self.name_conflict = name_conflict


def _owner_references(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    return list(metadata.get("ownerReferences") or ())


def owned_by(metadata: dict[str, Any], uid: str) -> bool:
    """Whether an object's controller is the job with this UID. Labels can be set by anyone who
    may create the object; the operator acts only on children it can prove are the job's own."""
    return any(ref.get("uid") == uid and ref.get("controller") for ref in _owner_references(metadata))


def _refusal(exc: ApiException) -> str:
    """The API server's own words for why it refused."""
    try:
        import json

        return json.loads(exc.body).get("message") or str(exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


#: (connect, read) seconds for every API call the operator makes. A call that hangs (an
#: overloaded API server, a half-open connection) fails and is retried by the next round instead
#: of holding a job's lock, or the scheduler loop, for ever.
#: Together they stay within the leader's margin (``leader.Timing``: lease - renew deadline).
REQUEST_TIMEOUT = (3.0, 6.0)


class TimedApiClient(client.ApiClient):
    """An ApiClient whose every request has a timeout unless the caller gives its own (the
    generated client has no default: without one, a call may wait for ever)."""

    def __init__(
        self,
        configuration: client.Configuration | None = None,
        timeout: tuple[float, float] = REQUEST_TIMEOUT,
    ) -> None:
        super().__init__(configuration)
        self.timeout = timeout

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):  # type: ignore[override]
        return super().call_api(
            method, url, header_params, body, post_params, _request_timeout or self.timeout
        )


def load_api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return TimedApiClient()


class Kube:
    """The operator's whole use of the Kubernetes API, behind a few verbs the engine needs:
    read a job, its Plugin and its children (``children`` keeps only what the job provably
    owns); apply one decided action (create, delete, patch status, post an Event). Every call
    has a timeout (``TimedApiClient``); 409/404 on the job become ``Conflict`` (decide again),
    refusals of a child become ``Refused`` (decided by ``decide.refused``)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.networking = client.NetworkingV1Api(api)
        self.api = api
        #: Told every PluginJob body a patch of ours returns (the informer's write-through).
        self.patched: Callable[[dict[str, Any]], None] = lambda body: None
        #: Shared objects (no owner: the namespace's standing deny-all) seen to exist, and when:
        #: every new job asks for its namespace's, and a thousand submissions need not cost a
        #: thousand refused creates. Asked again after STANDING_SECONDS.
        self._standing: dict[tuple[str, str, str], float] = {}

    # --- reading ------------------------------------------------------------------------------

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "pluginjobs", name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def all_jobs(self, namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Every PluginJob: cluster-wide, or in each of ``namespaces`` (where the operator's
        namespaced permissions are bound when the chart's watchNamespaces is set)."""
        if not namespaces:
            return self.custom.list_cluster_custom_object(GROUP, VERSION, "pluginjobs")["items"]
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "pluginjobs")
            items += listed["items"]
        return items

    def plugins(self) -> dict[str, Plugin]:
        items = self.custom.list_cluster_custom_object(GROUP, VERSION, "plugins")["items"]
        return {p["metadata"]["name"]: Plugin.from_body(p) for p in items}

    def plugin(self, name: str) -> Plugin | None:
        try:
            return Plugin.from_body(self.custom.get_cluster_custom_object(GROUP, VERSION, "plugins", name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def children(self, job: PluginJob) -> Children:
        """The job's pods, workspace and policy: found by label, kept only when the name is the
        one the operator gives and the job is its controller (a labelled look-alike is ignored)."""
        selector = f"{builders.JOB_UID}={job.uid}"

        deleting = bool(job.metadata.get("deletionTimestamp"))

        def ours(metadata: dict[str, Any], suffix: str) -> bool:
            if metadata["name"] != builders.child_name(job, suffix):
                return False
            # `kubectl delete --cascade=orphan` strips the ownerReferences of a job's children
            # before the job goes: while it is deleted, an orphan with its child's name and
            # label is still cleaned up (never adopted to run anything)
            return owned_by(metadata, job.uid) or (deleting and not _owner_references(metadata))

        pods: dict[str, PodView] = {}
        for pod in self._listed(self.core.list_namespaced_pod, job.namespace, selector):
            role = pod["metadata"].get("labels", {}).get(builders.ROLE)
            if role in builders.ROLES and ours(pod["metadata"], role):
                pods[role] = PodView.from_body(pod)
        claims = [
            c
            for c in self._listed(self.core.list_namespaced_persistent_volume_claim, job.namespace, selector)
            if ours(c["metadata"], "ws")
        ]
        policies = [
            p
            for p in self._listed(self.networking.list_namespaced_network_policy, job.namespace, selector)
            if ours(p["metadata"], "isolation")
        ]
        run_tail = None
        run = pods.get("run")
        if run is not None and run.phase in ("Succeeded", "Failed"):
            text = self.log(job.namespace, run.name, "plugin", tail_lines=200)
            run_tail = run_log_tail(text) if text is not None else None
        return Children(
            pods=pods,
            workspace=any(not c["metadata"].get("deletionTimestamp") for c in claims),
            workspace_terminating=any(c["metadata"].get("deletionTimestamp") for c in claims),
            policy=bool(policies),
            run_log_tail=run_tail,
        )

    def _listed(self, list_call: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Objects of one kind in a namespace, by label, as plain dicts (as the API serves them)."""
        return self.api.sanitize_for_serialization(list_call(namespace, label_selector=selector).items)

    def log(
        self,
        namespace: str,
        pod: str,
        container: str,
        limit_bytes: int | None = None,
        tail_lines: int | None = None,
    ) -> str | None:
        """A container's log (its first ``limit_bytes``, or its last ``tail_lines``); None when
        the container never started or the pod is gone."""
        kwargs: dict[str, Any] = {"container": container, "_preload_content": False}
        if limit_bytes:
            kwargs["limit_bytes"] = limit_bytes
        if tail_lines:
            kwargs["tail_lines"] = tail_lines
        try:
            response = self.core.read_namespaced_pod_log(pod, namespace, **kwargs)
        except ApiException as exc:
            if exc.status in (400, 404):
                return None
            raise
        try:  # a plug-in's bytes, not necessarily UTF-8: never let them break a decision
            return response.data.decode("utf-8", "replace")
        finally:
            response.release_conn()

    # --- writing ------------------------------------------------------------------------------

    def apply(
        self,
        job: PluginJob,
        action: PatchStatus | Create | Delete | Warn | ShortenDeadline,
        version: str | None,
    ) -> str | None:
        """Apply one action; returns the job's resourceVersion after it (status patches move it)."""
        if isinstance(action, PatchStatus):
            version = self.patch_status(job, action.patch, version)
            if action.event:
                self.event(job, action.event)
        elif isinstance(action, Create):
            try:
                self._create(action.manifest)
            except Refused as refusal:
                if not action.optional:
                    raise
                log.info("%s: not made ahead (%s); made when its step begins", job.key, refusal)
        elif isinstance(action, ShortenDeadline):
            self.shorten_deadline(job.namespace, action.pod, action.seconds)
        elif isinstance(action, Delete):
            self._delete(job.namespace, action.kind, action.name, action.grace)
        else:
            self.event(job, action.event)
        return version

    def set_finalizer(self, job: PluginJob, finalizer: str, present: bool, version: str | None) -> str | None:
        current = list(job.metadata.get("finalizers") or [])
        wanted = [f for f in current if f != finalizer] + ([finalizer] if present else [])
        if wanted == current:
            return version
        body: dict[str, Any] = {"metadata": {"finalizers": wanted}}
        if version:
            body["metadata"]["resourceVersion"] = version  # never clobber another's finalizer
        return self._guarded_patch(job, self.custom.patch_namespaced_custom_object, body)

    def replace_secret(self, manifest: dict[str, Any], data: dict[str, str]) -> None:
        """Create the Secret with ``data``; one left by an earlier attempt is replaced (never read)."""
        body = {**manifest, "stringData": data}
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        for _ in range(3):
            try:
                self.core.create_namespaced_secret(namespace, body)
                return
            except ApiException as exc:
                if exc.status in (400, 403, 422):
                    raise Refused("Secret", name, _refusal(exc)) from exc
                if exc.status != 409:
                    raise
            self._delete(namespace, "Secret", name, None)
        raise Conflict(f"Secret {namespace}/{name} keeps coming back")

    def patch_status(self, job: PluginJob, patch: dict[str, Any], version: str | None) -> str:
        body: dict[str, Any] = {"status": patch}
        if version:
            body["metadata"] = {"resourceVersion": version}  # optimistic concurrency
        return self._guarded_patch(job, self.custom.patch_namespaced_custom_object_status, body)

    def _guarded_patch(self, job: PluginJob, patch: Any, body: dict[str, Any]) -> str:
        """Patch the job; a moved resourceVersion (409) or a vanished job (404) is a Conflict:
        the decision was taken on stale data and is taken again."""
        try:
            result = patch(GROUP, VERSION, job.namespace, "pluginjobs", job.name, body)
        except ApiException as exc:
            if exc.status in (404, 409):
                raise Conflict(f"{job.key}: {exc.reason}") from exc
            raise
        self.patched(result)
        return result["metadata"]["resourceVersion"]

    def _create(self, manifest: dict[str, Any]) -> None:
        kind, namespace = manifest["kind"], manifest["metadata"]["namespace"]
        create = {
            "Pod": self.core.create_namespaced_pod,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
            "NetworkPolicy": self.networking.create_namespaced_network_policy,
        }[kind]
        name = manifest["metadata"]["name"]
        shared = not manifest["metadata"].get("ownerReferences")
        seen = self._standing.get((kind, namespace, name))
        if shared and seen is not None and time.monotonic() - seen < STANDING_SECONDS:
            return
        try:
            create(namespace, manifest)
            log.info("created %s %s/%s", kind, namespace, name)
        except ApiException as exc:
            if exc.status in (400, 403, 422):
                raise Refused(kind, name, _refusal(exc)) from exc
            if exc.status != 409:
                raise
            self._check_taken_name(kind, namespace, manifest)
        if shared:
            if len(self._standing) > 10_000:
                self._standing.clear()
            self._standing[kind, namespace, name] = time.monotonic()

    def shorten_deadline(self, namespace: str, name: str, seconds: int) -> None:
        """A pod gone (404) has no deadline to keep; a refused raise (422: a replay whose clock
        moved on) leaves the lower value already set."""
        body = {"spec": {"activeDeadlineSeconds": max(1, seconds)}}
        try:
            self.core.patch_namespaced_pod(name, namespace, body)
        except ApiException as exc:
            if exc.status not in (404, 422):
                raise
            log.info("deadline of pod %s/%s left as it is: %s", namespace, name, _refusal(exc))

    def _check_taken_name(self, kind: str, namespace: str, manifest: dict[str, Any]) -> None:
        """A create found the name taken: idempotent when the object is the job's own (made by
        an earlier round or an earlier operator), a ``NameConflict`` otherwise — never mount,
        wipe or publish what someone else made under that name."""
        owners = manifest["metadata"].get("ownerReferences") or []
        if not owners:
            return  # shared objects (the namespace's standing deny-all) have no single owner
        name = manifest["metadata"]["name"]
        read = {
            "Pod": self.core.read_namespaced_pod,
            "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
            "NetworkPolicy": self.networking.read_namespaced_network_policy,
        }[kind]
        try:
            existing = read(name, namespace)
        except ApiException as exc:
            if exc.status == 404:  # gone meanwhile: the next round creates it
                raise Conflict(f"{kind} {namespace}/{name} vanished after a name clash") from exc
            raise
        if not owned_by(self.api.sanitize_for_serialization(existing)["metadata"], owners[0]["uid"]):
            raise Refused(
                kind,
                name,
                f"{kind} {name} already exists in namespace {namespace} and does not belong to this "
                "job; kubecircus will not use it. Delete or rename it, then resubmit the job",
                name_conflict=True,
            )

    def _delete(self, namespace: str, kind: str, name: str, grace: int | None) -> None:
        delete = {
            "Pod": self.core.delete_namespaced_pod,
            "PersistentVolumeClaim": self.core.delete_namespaced_persistent_volume_claim,
            "NetworkPolicy": self.networking.delete_namespaced_network_policy,
            "Secret": self.core.delete_namespaced_secret,
        }[kind]
        kwargs: dict[str, Any] = {"propagation_policy": "Background"}
        if grace is not None:
            kwargs["grace_period_seconds"] = grace
        try:
            delete(name, namespace, **kwargs)
            log.info("deleted %s %s/%s", kind, namespace, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def delete_job(self, job: PluginJob) -> None:
        """Delete the job as it was seen (uid and resourceVersion preconditions): history is
        decided on the informer's copy, and a job recreated under the name or resubmitted
        since must not go with it. A moved job (409) is left to the next round."""
        seen = client.V1Preconditions(uid=job.uid, resource_version=job.metadata.get("resourceVersion"))
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                job.namespace,
                "pluginjobs",
                job.name,
                body=client.V1DeleteOptions(propagation_policy="Background", preconditions=seen),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def event(self, job: PluginJob, event: Event) -> None:
        now = datetime.now(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{job.name[:200].rstrip('-.')}.", namespace=job.namespace
            ),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind="PluginJob",
                name=job.name,
                namespace=job.namespace,
                uid=job.uid,
                resource_version=job.metadata.get("resourceVersion"),
            ),
            reason=event.reason,
            message=event.message[:1024],
            type=event.type,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="kubecircus-operator"),
            reporting_component="kubecircus.io/operator",
            reporting_instance="kubecircus-operator",
        )
        try:
            self.core.create_namespaced_event(job.namespace, body)
        except ApiException as exc:  # an Event is never worth failing a reconcile for
            log.warning("could not post event %s for %s: %s", event.reason, job.key, exc.reason)
