"""The ``kubecircus`` command line.

``kubecircus convert SOURCE OUTDIR`` turns one DICOM series into a CIRCUS CS volume;
``kubecircus submit|status|logs|results|cancel`` run plug-ins on the cluster for people
(``kubecircus/client/``). Bad input ends with exit status 1 and one line on stderr saying what is
wrong and what to do; usage errors with status 2 (argparse's convention). Never a traceback for
bad input.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from kubecircus import __version__
from kubecircus.client.defaults import COMMANDS as CLIENT_COMMANDS
from kubecircus.client.parser import add_parsers as add_client_parsers

EXIT_INPUT_REFUSED = 1


def _tag(text: str) -> int:
    """``gggg,eeee`` (or ``ggggeeee``) as an integer tag."""
    digits = text.replace(",", "").replace("(", "").replace(")", "").strip()
    if len(digits) != 8:
        raise argparse.ArgumentTypeError(f"'{text}' is not a tag like 0019,10a1")
    try:
        return int(digits, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a tag like 0019,10a1") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubecircus", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kubecircus {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    add_client_parsers(commands)
    convert = commands.add_parser(
        "convert",
        help="convert a DICOM series into {id}.mhd, {id}.raw, {id}.json",
        description="Convert the DICOM series under SOURCE into OUTDIR/N.mhd, N.raw and N.json "
        "(the CIRCUS CS plug-in input format).",
    )
    convert.add_argument("source", metavar="SOURCE", help="folder searched recursively for DICOM files")
    convert.add_argument("outdir", metavar="OUTDIR", help="folder to write N.mhd, N.raw, N.json into")
    convert.add_argument("--volume-id", type=int, default=0, metavar="N", help="volume id N (default 0)")
    convert.add_argument(
        "--series-uid", metavar="UID", help="the series to convert when SOURCE holds several"
    )
    convert.add_argument(
        "--range",
        dest="slice_range",
        metavar="START:END:DELTA",
        help="select images by InstanceNumber, written in this order (DELTA may be negative)",
    )
    convert.add_argument(
        "--keep-private",
        type=_tag,
        action="append",
        default=[],
        metavar="GGGG,EEEE",
        help="keep this private tag in N.json (repeatable)",
    )
    convert.add_argument("--json", action="store_true", help="print what was written as JSON on stdout")
    commands.add_parser(
        "operator",
        help="run the operator (configured by KUBECIRCUS_* environment variables)",
        description="Run the kubecircus operator against the cluster of the in-cluster service "
        "account or the current kubeconfig. Settings: see kubecircus/operator/config.py.",
    )
    worker = commands.add_parser(
        "worker",
        help="run one trusted step of a job (inside its pod; configured by the operator)",
        description="Run a job step: stage (DICOM from the store to volumes on the workspace), "
        "prepare (check the workspace, prove isolation) or collect (out/ to the store). "
        "Exit codes and the report are documented in kubecircus/worker/report.py.",
    )
    worker.add_argument("step", choices=["stage", "prepare", "collect"])
    store = commands.add_parser(
        "store-setup",
        help="create kubecircus's buckets and its object-store user (run by the chart's set-up Job)",
        description="With the store's admin credentials (KUBECIRCUS_ADMIN_CREDENTIALS folder), create "
        "the kubecircus and input buckets and the operator's user with its policy. MinIO only.",
    )
    store.add_argument(
        "--wait", type=float, default=120, metavar="SECONDS", help="wait this long for the store"
    )
    generate = commands.add_parser(
        "generate",
        help="write every generated file: the CRDs and the chart's operator environment (config.py)",
    )
    generate.add_argument("--check", action="store_true", help="fail if the files on disk differ")
    crds = commands.add_parser("crds", help="write the CRDs generated from the API models")
    crds.add_argument("--check", action="store_true", help="fail if the files on disk differ")
    crds.add_argument(
        "--output",
        action="append",
        metavar="DIR",
        help="folder to write into (repeatable; default: crds/ and helm/kubecircus/crds/)",
    )
    return parser


def _configure_logging(verbosity: int, quiet_pydicom: bool) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="kubecircus: %(levelname)s: %(message)s", stream=sys.stderr)
    if quiet_pydicom and verbosity < 2:
        # pydicom reports every oddity of real-world files; refusals are ours to word. (Its config
        # module sets the "pydicom" logger's level when imported, so import it first.)
        import pydicom.config

        logging.getLogger("pydicom").setLevel(logging.CRITICAL + 1)
        warnings.simplefilter("ignore")
        # With its reports unseen, pydicom need not check each value it decodes against its VR's
        # rules either (in its default mode a failed check only warns; the value is the same):
        # ~15% of a header's parse, in the forked header workers too.
        pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one conversion, and skipped at exit.

    A conversion makes hundreds of thousands of objects (the imports, pydicom datasets) and
    almost no reference cycles (a few dozen objects for 1,200 slices), so the collector's passes
    over every live object are wasted: ~50 ms from start to exit, most of it the collection
    at interpreter exit. Forked header workers inherit the setting and so do not copy the
    parent's pages to update its bookkeeping. What is alive at exit is frozen (``gc.freeze``),
    so the final collection skips it; a caller that runs ``main`` in its own long-lived process
    gets its collector back when the conversion ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    atexit.register(gc.freeze)
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _convert(args: argparse.Namespace) -> int:
    from kubecircus.converter import ConversionError, convert

    if args.volume_id < 0:
        print("kubecircus: error: --volume-id must be 0 or more", file=sys.stderr)
        return 2
    try:
        result = convert(
            args.source,
            args.outdir,
            volume_id=args.volume_id,
            series_uid=args.series_uid,
            slice_range=args.slice_range,
            keep_private=frozenset(args.keep_private),
        )
    except ConversionError as err:
        print(f"kubecircus: cannot convert {args.source}: {err}", file=sys.stderr)
        return EXIT_INPUT_REFUSED
    except OSError as err:
        print(
            f"kubecircus: cannot convert {args.source}: {err.strerror or err}: {err.filename}",
            file=sys.stderr,
        )
        return EXIT_INPUT_REFUSED
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        x, y, z = result.size
        print(f"{result.mhd}: {x}x{y}x{z} {result.element_type}, series {result.series_uid}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "worker":  # logs on stdout, to the pod log; the report is its own
        from kubecircus.worker.main import main as worker_main

        return worker_main(args.step)
    if args.command == "convert":
        # numpy's OpenBLAS starts a thread per CPU at import that spins for a while (~0.1 CPU s
        # of a 300-slice conversion's 0.9); the converter's only BLAS calls are (N, 3) @ (3,)
        # products, which give the same bits on one thread (checked up to 100,000 rows).
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        with _collector_paused():  # from before pydicom is imported (for its logger)
            _configure_logging(args.verbose, quiet_pydicom=True)
            return _convert(args)
    _configure_logging(args.verbose, quiet_pydicom=False)
    if args.command in CLIENT_COMMANDS:
        return _client(args)
    if args.command == "crds":
        return _crds(args)
    if args.command == "generate":
        return _generate(args)
    if args.command == "store-setup":
        from kubecircus.objectstore.admin import main as setup_main

        return setup_main(wait=args.wait)
    if args.command == "operator":
        level = os.environ.get("KUBECIRCUS_LOG_LEVEL", "INFO").upper()
        logging.getLogger().setLevel(getattr(logging, level, logging.INFO))
        from kubecircus.operator.main import run

        run()
        return 0
    return 2  # pragma: no cover - argparse enforces a command


def _client(args: argparse.Namespace) -> int:
    """submit, status, logs, results, cancel: every expected failure is one line."""
    from kubecircus.client.commands import run
    from kubecircus.client.errors import EXIT_INTERRUPTED, ClientError

    try:
        return run(args)
    except ClientError as err:
        print(f"kubecircus: {err.message}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print("kubecircus: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _crds(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kubecircus.operator.crdgen import write

    targets = [Path(p) for p in (args.output or ["crds", "helm/kubecircus/crds"])]
    differences = write(targets, check=args.check)
    if differences:
        print(
            "kubecircus: generated CRDs differ from the API models; run `make crds`: "
            + ", ".join(differences),
            file=sys.stderr,
        )
        return 1
    return 0


def _generate(args: argparse.Namespace) -> int:
    """CRDs and the chart's environment list, from the repository root."""
    from pathlib import Path

    from kubecircus.operator.chartenv import write

    args.output = None
    status = _crds(args)
    differences = write(Path("."), check=args.check)
    if differences:
        print(
            "kubecircus: the chart's operator environment differs from config.py; run `make generate`: "
            + ", ".join(differences),
            file=sys.stderr,
        )
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
