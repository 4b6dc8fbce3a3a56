"""What the operator sees of a job's children, reduced to the facts decisions need (pure types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubecircus.timestamps import parse

#: Waiting reasons that mean the plug-in image cannot be had: a plug-in failure, not infrastructure.
IMAGE_UNAVAILABLE = frozenset({"ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName"})


@dataclass(frozen=True)
class ContainerView:
    name: str
    exit_code: int | None = None
    terminated_reason: str | None = None
    waiting_reason: str | None = None
    message: str | None = None
    #: The image that runs, by digest (containerStatuses[].imageID).
    image_id: str | None = None
    #: When it ended (state.terminated.finishedAt).
    finished_at: datetime | None = None

    @property
    def terminated(self) -> bool:
        return self.exit_code is not None


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str
    reason: str | None = None  # pod-level: Evicted, DeadlineExceeded, NodeLost, ...
    message: str | None = None
    deleting: bool = False
    containers: tuple[ContainerView, ...] = ()
    init_containers: tuple[ContainerView, ...] = ()
    #: When the pod was created, and when its deletion was asked for.
    created: datetime | None = None
    deleted_at: datetime | None = None
    #: The scheduler's words when it cannot place the pod (PodScheduled False).
    unschedulable: str | None = None
    #: When the kubelet took the pod on (status.startTime): its activeDeadlineSeconds count from here.
    started_at: datetime | None = None
    deadline: int | None = None  # spec.activeDeadlineSeconds

    @property
    def completed(self) -> bool:
        """Every container exited 0 and nothing ended the pod: its work is done. The kubelet
        writes the pod's own phase (Succeeded) on its next status sync, about a second after
        the last container's end on a busy node; with restartPolicy Never a container's
        terminated state is final, so the next step need not wait for it. Only for the trusted
        worker steps: their process dies of SIGTERM (exit 143), so an exit 0 is their own. A
        plug-in may trap the SIGTERM of its deadline, an eviction or a deletion and exit 0:
        the run step waits for the phase, which says why the pod ended."""
        every = (*self.init_containers, *self.containers)
        if self.phase == "Succeeded":
            return True
        return (
            self.phase != "Failed"
            and not self.reason
            and not self.deleting
            and bool(self.containers)
            and all(c.exit_code == 0 and c.terminated_reason in (None, "Completed") for c in every)
        )

    @property
    def ended(self) -> bool:
        """Its outcome is known: it completed, or its phase is final."""
        return self.completed or self.phase in ("Succeeded", "Failed")

    def container(self, name: str) -> ContainerView | None:
        return next((c for c in (*self.init_containers, *self.containers) if c.name == name), None)

    @property
    def started(self) -> bool:
        """A container ran or runs: the pod is past scheduling, volumes and image pulls."""
        return self.phase != "Pending" or any(
            c.terminated or c.waiting_reason is None for c in (*self.init_containers, *self.containers)
        )

    def waiting(self) -> str | None:
        """Why the pod has not started, in the scheduler's or the kubelet's words."""
        if self.unschedulable:
            return self.unschedulable
        for c in (*self.init_containers, *self.containers):
            if c.waiting_reason:
                return f"{c.name}: {c.waiting_reason} {c.message or ''}".strip()
        return None

    @classmethod
    def from_body(cls, pod: dict[str, Any]) -> PodView:
        status = pod.get("status") or {}

        def views(key: str) -> tuple[ContainerView, ...]:
            out = []
            for c in status.get(key) or []:
                state = c.get("state") or {}
                term, wait = state.get("terminated") or {}, state.get("waiting") or {}
                out.append(
                    ContainerView(
                        name=c["name"],
                        exit_code=term.get("exitCode"),
                        terminated_reason=term.get("reason"),
                        waiting_reason=wait.get("reason"),
                        message=(term.get("message") or wait.get("message") or None),
                        image_id=c.get("imageID") or None,
                        finished_at=_time(term.get("finishedAt")),
                    )
                )
            return tuple(out)

        scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        unschedulable = None
        if scheduled.get("status") == "False":
            unschedulable = (
                f"{scheduled.get('reason') or 'Unschedulable'}: {scheduled.get('message') or ''}".strip()
            )
        return cls(
            name=pod["metadata"]["name"],
            phase=status.get("phase", "Pending"),
            reason=status.get("reason"),
            message=status.get("message"),
            deleting=bool(pod["metadata"].get("deletionTimestamp")),
            created=_time(pod["metadata"].get("creationTimestamp")),
            deleted_at=_time(pod["metadata"].get("deletionTimestamp")),
            unschedulable=unschedulable,
            started_at=_time(status.get("startTime")),
            deadline=(pod.get("spec") or {}).get("activeDeadlineSeconds"),
            containers=views("containerStatuses"),
            init_containers=views("initContainerStatuses"),
        )


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return parse(value)
    return None


@dataclass(frozen=True)
class Children:
    """A job's children as observed, plus the logs decisions need (read only when relevant)."""

    pods: dict[str, PodView] = field(default_factory=dict)  # by role: stage, run, collect
    workspace: bool = False
    #: The last run's workspace is still being deleted: a new one cannot be made yet.
    workspace_terminating: bool = False
    policy: bool = False
    #: The end of the plug-in's stdout, once its pod finished.
    run_log_tail: str | None = None
    #: The plug-in's latest progress line (0..1 of its run, ``kubecircus.progress``), read from a
    #: bounded tail of its log now and then while it runs; None when not read or not reported.
    plugin_progress: float | None = None
    #: results.json as stored by collect, when it is small enough to go into the status.
    results: Any = None
