"""The client's subcommands in the ``kubecircus`` parser. Standard library only: the parser is
built for every command, also ``kubecircus worker`` in the worker image."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .defaults import INPUT_BUCKET, STORE_SERVICE, SYSTEM_NAMESPACE


def _checked(problem: str) -> Callable[[str], str]:
    """An argparse type that refuses what ``jobs.<problem>`` finds wrong (exit 2, argparse's
    way). ``jobs`` is imported only when a client command is parsed."""

    def check(text: str) -> str:
        from . import jobs

        why = getattr(jobs, problem)(text)
        if why:
            raise argparse.ArgumentTypeError(why)
        return text

    return check


def _priority(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not -1000 <= value <= 1000:
        raise argparse.ArgumentTypeError("the priority is between -1000 and 1000")
    return value


def _cluster_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="the namespace (default: your kubeconfig context's)")
    common.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    common.add_argument("--context", help="kubeconfig context to use (default: the current one)")
    return common


def _store_options() -> argparse.ArgumentParser:
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store",
        metavar="HOST:PORT",
        help="the object store (default: $KUBECIRCUS_STORE_ENDPOINT, else the "
        "bundled MinIO's Service, through a port-forward when its address is not reachable)",
    )
    store.add_argument(
        "--store-credentials",
        metavar="DIR",
        help="folder with files accessKey and secretKey (default: "
        "$AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY, else the bundled MinIO's Secret if you may read it)",
    )
    store.add_argument(
        "--system-namespace", default=SYSTEM_NAMESPACE, help=f"where kubecircus runs ({SYSTEM_NAMESPACE})"
    )
    store.add_argument(
        "--store-service", default=STORE_SERVICE, help=f"the bundled store's Service ({STORE_SERVICE})"
    )
    store.add_argument(
        "--port-forward",
        action="store_true",
        help="reach the bundled store through a port-forward even when its Service address answers",
    )
    return store


def add_parsers(commands: Any) -> None:
    """Add the client's subcommands to the ``kubecircus`` parser's subparsers."""
    cluster, store = _cluster_options(), _store_options()
    submit = commands.add_parser(
        "submit",
        parents=[cluster, store],
        help="upload a DICOM folder and run a plug-in on it",
        description="Upload the files under DICOM_DIR (in parallel) to s3://BUCKET/<namespace>/<job>/, "
        "create a PluginJob that runs PLUGIN on them and, with --wait, follow it to the end.",
    )
    submit.add_argument("folder", metavar="DICOM_DIR", help="folder holding the series' DICOM files")
    submit.add_argument(
        "--plugin", required=True, metavar="NAME", help="the Plugin to run (kubectl get plugins)"
    )
    submit.add_argument(
        "--series-uid",
        type=_checked("series_uid_problem"),
        metavar="UID",
        help="the series to use when the folder holds several",
    )
    submit.add_argument(
        "--range",
        dest="slice_range",
        type=_checked("range_problem"),
        metavar="S:E:D",
        help="images by InstanceNumber START:END:DELTA (DELTA may be negative)",
    )
    submit.add_argument("--priority", type=_priority, metavar="N", help="higher runs first (-1000..1000)")
    submit.add_argument(
        "--name",
        type=_checked("name_problem"),
        help="the job's name (default: <plugin>-<YYYYmmdd-HHMMSS>, UTC)",
    )
    submit.add_argument("--bucket", default=INPUT_BUCKET, help=f"input bucket to upload to ({INPUT_BUCKET})")
    submit.add_argument("--wait", action="store_true", help="follow the job; exit 0 only if it Succeeded")
    submit.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="with --wait: give up after this long"
    )

    status = commands.add_parser(
        "status",
        parents=[cluster],
        help="list the namespace's jobs, or show one",
        description="Without JOB: the namespace's PluginJobs as a table. With JOB: that job in detail.",
    )
    status.add_argument("job", nargs="?", metavar="JOB")

    logs = commands.add_parser(
        "logs",
        parents=[cluster, store],
        help="print a job's plug-in output (stdout)",
        description="While the plug-in runs: its pod's log. Once it is done: the stored log "
        "(status.logRef), or the end of it kept in status.logTail.",
    )
    logs.add_argument("job", metavar="JOB")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="while it runs: keep printing until it ends"
    )

    results = commands.add_parser(
        "results",
        parents=[cluster, store],
        help="print a job's results and where its outputs are",
        description="Print status.outputs.results (results.json) and the outputs' location; "
        "--download fetches every output object (out/..., manifest.json, plugin-log.txt) into DIR.",
    )
    results.add_argument("job", metavar="JOB")
    results.add_argument("--download", metavar="DIR", help="fetch the job's outputs into this folder")

    cancel = commands.add_parser(
        "cancel",
        parents=[cluster],
        help="cancel a queued or running job",
        description="Set spec.cancel=true: a queued job leaves the queue, a running one's pods are deleted; "
        "either ends Cancelled.",
    )
    cancel.add_argument("job", metavar="JOB")
    cancel.add_argument("--wait", action="store_true", help="wait until the job has ended")
