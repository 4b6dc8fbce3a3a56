"""``kubecircus worker stage|prepare|collect``: run one step and report by the contract.

Whatever happens, the step ends by writing its report (``report.py``) to the termination message
file and exiting with the report's code; an outage of the object store becomes ``Unavailable``
(retried by the operator), anything unexpected ``Error`` with its one-line description.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .report import ERROR, UNAVAILABLE, Report, encode
from .task import Paths, task_from_env

log = logging.getLogger(__name__)
STEPS = ("stage", "prepare", "collect")


def _store(paths: Paths):
    from kubecircus.objectstore.client import Credentials, StoreConfig, connect

    config = StoreConfig.from_env()
    return connect(config, Credentials.from_dir(paths.credentials)), config.bucket


def _run(step: str) -> Report:
    paths = Paths.from_env()
    task = task_from_env()
    if step == "prepare":
        from . import prepare

        return prepare.run(task, paths.workspace)
    store, bucket = _store(paths)
    if step == "stage":
        from . import stage

        return stage.run(task, store, bucket, paths.workspace, paths.scratch)
    from . import collect

    return collect.run(task, store, bucket, paths.workspace)


def main(step: str) -> int:
    logging.basicConfig(level=logging.INFO, format=f"{step}: %(levelname)s: %(message)s", stream=sys.stdout)
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    try:
        report = _run(step)
    except Exception as exc:
        from kubecircus.objectstore.client import unavailable

        if unavailable(exc):
            log.warning("object store unavailable: %s", exc)
            report = Report(step, UNAVAILABLE, f"the object store was unavailable: {exc}")
        else:
            log.exception("the %s step failed", step)
            report = Report(step, ERROR, f"{type(exc).__name__}: {exc}")
    text = encode(report)
    target = Path(os.environ.get("KUBECIRCUS_TERMINATION_LOG", "/dev/termination-log"))
    try:
        target.write_text(text, "utf-8")
    except OSError as exc:
        log.error("could not write the report to %s: %s", target, exc)
    log.info("%s: %s", report.reason, report.message)
    return report.exit_code
