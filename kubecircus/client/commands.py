"""The subcommands for people: ``submit``, ``status``, ``logs``, ``results`` and ``cancel``.

Data goes to stdout (the table, a job's details, results JSON, the log); progress bars and
notes to stderr. Every expected failure is a :class:`ClientError` (one line, its exit code),
which ``kubecircus.cli.main`` prints; :func:`run` turns the libraries' errors into one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from rich.console import Console
from rich.filesize import decimal

from . import jobs
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, ClientError, printable, translate
from .store import Store, StoreOptions, open_store
from .transfer import (
    WORKERS,
    download_all,
    folder_files,
    list_objects,
    manifest_mismatches,
    object_keys,
    upload_files,
)

log = logging.getLogger(__name__)

PLUGIN_CONTAINER = "plugin"  # the plug-in's container in the run pod (operator/builders.py run_pod)


# --- running a command ------------------------------------------------------------------------


def run(args: argparse.Namespace, out: TextIO | None = None, console: Console | None = None) -> int:
    """Run one client command; library errors become one-line ClientErrors."""
    out = out or sys.stdout
    if args.command != "logs" or out.isatty():  # a log piped to a file stays byte for byte
        out = PrintableText(out)
    # markup off: job messages, keys and logs may hold [brackets] rich would take for tags
    console = console or Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
    if args.verbose < 2:  # urllib3 warns on every retried connection: our one line says it all
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    context = SimpleNamespace(kube=None)
    handler = {"submit": submit, "status": status, "logs": logs, "results": results, "cancel": cancel}
    try:
        return handler[args.command](args, context, out, console)
    except ClientError:
        raise
    except Exception as exc:
        server = getattr(context.kube, "server", "") if context.kube else ""
        error = translate(exc, server)
        if error is None:
            raise
        raise error from None


class PrintableText:
    """A text stream that shows control characters instead of sending them (``printable``)."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        return self.raw.write(printable(text))

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return self.raw.isatty()


def _kube(args: argparse.Namespace, context: SimpleNamespace) -> Any:
    from .kubeapi import Kube

    context.kube = Kube(args.kubeconfig, args.context, args.namespace)
    return context.kube


def _store(args: argparse.Namespace, kube: Any) -> Store:
    options = StoreOptions(
        args.store, args.store_credentials, args.system_namespace, args.store_service, args.port_forward
    )
    return open_store(kube, options, pool=WORKERS + 2)


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def submit(args: argparse.Namespace, context: SimpleNamespace, out: TextIO, console: Console) -> int:
    folder = Path(args.folder)
    files = folder_files(folder)  # an empty or missing folder is refused before anything else
    kube = _kube(args, context)
    namespace = kube.namespace
    if kube.plugin_exists(args.plugin) is False:
        raise ClientError(f"no Plugin named {args.plugin}; `kubectl get plugins` lists them")
    name = args.name or jobs.generated_name(args.plugin, datetime.now(UTC))
    if kube.job_exists(name):
        raise ClientError(
            f"a PluginJob named {name} already exists in namespace {namespace}; choose another --name"
        )
    prefix = jobs.upload_prefix(namespace, name)
    try:
        body = jobs.job_body(
            name,
            namespace,
            args.plugin,
            args.bucket,
            prefix,
            args.series_uid,
            args.slice_range,
            args.priority,
        )
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    where = f"s3://{args.bucket}/{prefix}"
    with _store(args, kube) as store:
        if list_objects(store, args.bucket, prefix):
            raise ClientError(f"{where} already holds objects; choose another --name")
        size = upload_files(store, args.bucket, object_keys(folder, files, prefix), console)
        console.print(f"uploaded {len(files)} files ({decimal(size)}) to {where}")
        try:
            kube.create_job(body)
        except ClientError:
            _remove_quietly(store, args.bucket, prefix)
            raise
    _say(out, f"submitted PluginJob {namespace}/{name}")
    console.print(f"watch it: kubectl -n {namespace} get pluginjob {name} -w   (or kubecircus status {name})")
    if not args.wait:
        return 0
    final = _follow(kube, name, console, args.timeout)
    return _ended(name, final, out, console)


def _follow(kube: Any, name: str, console: Console, timeout: float | None = None) -> dict[str, Any]:
    from .follow import follow

    try:
        return follow(kube, name, console, timeout=timeout)
    except KeyboardInterrupt:
        raise ClientError(
            f"stopped following {name}; it goes on (kubecircus status {name})", EXIT_INTERRUPTED
        ) from None


def _remove_quietly(store: Store, bucket: str, prefix: str) -> None:
    """The job was refused: take its upload back (best effort)."""
    from kubecircus.objectstore.client import delete_prefix

    try:
        delete_prefix(store.minio, bucket, prefix)
    except Exception as exc:
        log.warning("could not remove s3://%s/%s after the refusal: %s", bucket, prefix, exc)


def _ended(name: str, status: dict[str, Any], out: TextIO, console: Console) -> int:
    """After following: results on success; otherwise the reason, message and log tail."""
    phase = status.get("phase")
    if phase == "Succeeded":
        _print_results(status, out, console)
        return 0
    if status.get("logTail"):
        console.print("the end of the plug-in's output (status.logTail):", style="bold")
        console.out(printable(status["logTail"].rstrip("\n")), highlight=False)
    reason = f" ({status['reason']})" if status.get("reason") else ""
    message = f": {status['message']}" if status.get("message") else ""
    raise ClientError(f"{name} ended {phase}{reason}{message}", EXIT_FAILED)


def _print_results(status: dict[str, Any], out: TextIO, console: Console) -> None:
    text = jobs.results_json(status)
    location = jobs.outputs_location(status)
    if text is not None:
        _say(out, text)
    elif location:
        console.print(
            f"results.json is not inline (too large): {location}out/results.json (--download fetches it)"
        )
    if location:
        outputs = status.get("outputs") or {}
        console.print(
            f"outputs: {location} ({outputs.get('fileCount')} files in out/, manifest.json, plugin-log.txt)"
        )


def status(args: argparse.Namespace, context: SimpleNamespace, out: TextIO, console: Console) -> int:
    kube = _kube(args, context)
    if args.job:
        _say(out, jobs.format_details(jobs.details(kube.get_job(args.job))))
        return 0
    items = kube.list_jobs()
    if not items:
        console.print(f"No PluginJobs in namespace {kube.namespace}.")
        return 0
    _say(out, jobs.format_table(jobs.table(items)))
    return 0


def logs(args: argparse.Namespace, context: SimpleNamespace, out: TextIO, console: Console) -> int:
    from kubecircus.operator.builders import child_name

    kube = _kube(args, context)
    body = kube.get_job(args.job)
    state = body.get("status") or {}
    phase = state.get("phase")
    if phase in {"Running", "Collecting"}:
        # child_name reads only the job's name and uid
        job = SimpleNamespace(name=body["metadata"]["name"], uid=body["metadata"]["uid"])
        pod = child_name(job, "run")  # type: ignore[arg-type]
        if args.follow:
            wrote = False
            for chunk in kube.follow_log(pod, PLUGIN_CONTAINER):
                out.write(chunk.decode("utf-8", "replace"))
                out.flush()
                wrote = True
            if wrote:
                return 0
        else:
            text = kube.pod_log(pod, PLUGIN_CONTAINER)
            if text is not None:
                out.write(text)
                return 0
    if phase in {None, "Queued", "Staging"}:
        raise ClientError(
            f"{args.job} has no plug-in output yet: it is {phase or 'not seen by the operator yet'}"
        )
    if state.get("logRef"):
        try:
            with _store(args, kube) as store:
                _copy_stored_log(store, state["logRef"], out)
            return 0
        except ClientError as err:
            why = f"the stored log could not be read ({err.message})"
    else:
        why = "there is no stored log (status.logRef)"  # e.g. it failed before the plug-in ran
    if state.get("logTail"):
        console.print(f"note: {why}; showing the end of the output, from status.logTail")
        out.write(state["logTail"] if state["logTail"].endswith("\n") else state["logTail"] + "\n")
        return 0
    if phase not in jobs.FINISHED:
        raise ClientError(f"{args.job} has no plug-in output yet: it is {phase}")
    reason = f" ({state['reason']})" if state.get("reason") else ""
    raise ClientError(f"{args.job} has no plug-in output: it ended {phase}{reason}, and {why}")


def _copy_stored_log(store: Store, ref: dict[str, str], out: TextIO) -> None:
    try:
        response = store.minio.get_object(bucket_name=ref["bucket"], object_name=ref["key"])
    except Exception as exc:
        raise store.failure(exc, f"reading s3://{ref['bucket']}/{ref['key']}") from None
    try:
        for chunk in response.stream(1 << 16):
            out.write(chunk.decode("utf-8", "replace"))
        out.flush()
    finally:
        response.close()
        response.release_conn()


def results(args: argparse.Namespace, context: SimpleNamespace, out: TextIO, console: Console) -> int:
    kube = _kube(args, context)
    state = kube.get_job(args.job).get("status") or {}
    phase = state.get("phase")
    if phase != "Succeeded":
        reason = f" ({state['reason']})" if state.get("reason") else ""
        raise ClientError(
            f"{args.job} has no results: it is {phase or 'not seen by the operator yet'}{reason}"
        )
    _print_results(state, out, console)
    if args.download:
        outputs = state.get("outputs") or {}
        if not outputs.get("bucket") or not outputs.get("prefix"):
            raise ClientError(f"{args.job} names no outputs location (status.outputs)")
        target = Path(args.download)
        with _store(args, kube) as store:
            files = download_all(store, outputs["bucket"], outputs["prefix"], target, console)
        _check_manifest(files, outputs.get("manifestSha256"))
        console.print(f"downloaded {len(files)} files to {target}")
    return 0


def _check_manifest(files: dict[str, tuple[Path, str]], expected: str | None) -> None:
    """The downloaded outputs are the ones the job's manifest lists, by sha256."""
    if "manifest.json" not in files:
        raise ClientError("the job's outputs hold no manifest.json: cannot check what was downloaded")
    path, digest = files["manifest.json"]
    try:
        manifest = json.loads(path.read_bytes())
    except ValueError:
        raise ClientError(f"{path} is not JSON: cannot check what was downloaded") from None
    digests = {name: sha for name, (_, sha) in files.items()}
    problems = manifest_mismatches(manifest, digests, digest, expected)
    if problems:
        raise ClientError(f"the download differs from the job's manifest: {', '.join(problems)}")


def cancel(args: argparse.Namespace, context: SimpleNamespace, out: TextIO, console: Console) -> int:
    kube = _kube(args, context)
    phase = (kube.get_job(args.job).get("status") or {}).get("phase")
    if phase in jobs.FINISHED:
        _say(out, f"{args.job} already ended {phase}; nothing to cancel")
        return 0
    kube.cancel_job(args.job)
    if phase in {None, "Queued"}:
        what = "it leaves the queue and ends Cancelled"
    else:
        what = f"it is {phase}: the operator deletes its pods and it ends Cancelled"
    _say(out, f"cancel requested for {kube.namespace}/{args.job}: {what}")
    if not args.wait:
        console.print(f"follow it: kubecircus status {args.job}")
        return 0
    final = _follow(kube, args.job, console)
    _say(out, f"{args.job} ended {final.get('phase')}")
    return 0 if final.get("phase") == "Cancelled" else EXIT_FAILED
