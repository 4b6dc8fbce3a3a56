"""P4, staging throughput: the stage step against a plain parallel download, same MinIO, same run.

A synthetic 512x512x300 CT series (about 150 MiB of DICOM) is uploaded to a real MinIO process
started here. Each round, interleaved:

- download: the objects fetched in parallel with the ``minio`` client into a fresh folder (what
  any stager must at least do);
- stage: ``kubecircus worker``'s stage step, with credentials minted by STS exactly as the
  operator mints them: list, download and parse, convert, upload the volume to the cache, lay out
  in/ and the manifest — on a cache miss (each round uses a fresh namespace, so a fresh cache).

Prints median seconds and throughput (DICOM bytes / second) and the ratio stage/download.
Goal (data path issue): staging throughput >= 70 % of the plain download's.

    .venv/bin/python benchmarks/bench_staging.py [--rounds N] [--slices N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kubecircus.objectstore import admin, sts
from kubecircus.objectstore.client import Credentials, StoreConfig, connect
from kubecircus.objectstore.policy import stage_policy
from kubecircus.worker import stage

from dicomfactory import SeriesSpec, make_slices, save
from miniotest import ROOT_PASSWORD, ROOT_USER, MinioServer
from storetest import BUCKET, INPUTS, OPERATOR, upload_folder


def make_series(folder: Path, slices: int) -> int:
    spec = SeriesSpec(
        rows=512, columns=512, slices=slices, slice_step=1.0, pixel_spacing=(0.7, 0.7), signed=False,
        bits_stored=12, value_range=(0, 4095), slope=1, intercept=-1024,
    )  # fmt: skip
    save(make_slices(spec), folder)
    return sum(p.stat().st_size for p in folder.iterdir())


def plain_download(client, prefix: str, target: Path, workers: int) -> None:
    """The minio client's own fget_object, in parallel: no hashing, no parsing."""
    objects = list(client.list_objects(bucket_name=INPUTS, prefix=prefix, recursive=True))
    target.mkdir(parents=True)

    def fetch(obj) -> None:
        name = str(target / Path(obj.object_name).name)
        client.fget_object(bucket_name=INPUTS, object_name=obj.object_name, file_path=name)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fetch, objects))


def staged(config: StoreConfig, root, namespace: str, prefix: str, work: Path) -> float:
    """One stage step on a cold cache; returns its seconds."""
    upload_namespace = f"{namespace}/"
    for obj in root.list_objects(bucket_name=INPUTS, prefix=prefix, recursive=True):  # the namespace's copy
        from minio.commonconfig import CopySource

        root.copy_object(
            bucket_name=INPUTS,
            object_name=upload_namespace + obj.object_name.split("/", 1)[1],
            source=CopySource(INPUTS, obj.object_name),
        )
    job_prefix = upload_namespace + prefix.split("/", 1)[1]
    minted = sts.mint(config, OPERATOR, stage_policy(namespace, [(INPUTS, job_prefix)], BUCKET), 900, "bench")
    client = connect(config, Credentials(minted.access_key, minted.secret_key, minted.session_token))
    workspace = work / "ws"
    workspace.mkdir()
    task = {"namespace": namespace, "inputs": [{"bucket": INPUTS, "prefix": job_prefix}]}
    started = time.perf_counter()
    report = stage.run(task, client, BUCKET, workspace, work / "scratch")
    seconds = time.perf_counter() - started
    if not report.ok or report.details["inputs"][0]["cacheHit"]:
        raise SystemExit(f"staging did not convert: {report}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubecircus-bench-staging-") as tmp:
        work = Path(tmp)
        size = make_series(work / "series", args.slices)
        server = MinioServer(work / "minio")
        server.start()
        try:
            config = StoreConfig(endpoint=server.endpoint, bucket=BUCKET)
            root_creds = Credentials(ROOT_USER, ROOT_PASSWORD)
            admin.setup(config, root_creds, OPERATOR, [INPUTS], wait=30)
            root = connect(config, root_creds)
            upload_folder(root, work / "series", INPUTS, "source/ct/")
            plain_client = connect(config, root_creds)
            times: dict[str, list[float]] = {"download": [], "stage": []}
            for n in range(args.rounds):
                target = work / f"plain-{n}"
                started = time.perf_counter()
                plain_download(plain_client, "source/ct/", target, stage.Limits().downloads)
                times["download"].append(time.perf_counter() - started)
                shutil.rmtree(target)
                round_dir = work / f"stage-{n}"
                round_dir.mkdir()
                times["stage"].append(staged(config, root, f"bench-{n}", "source/ct/", round_dir))
                shutil.rmtree(round_dir)
        finally:
            server.stop()
    mib = size / 2**20
    print(f"series: {args.slices} slices 512x512, {mib:.0f} MiB of DICOM; {args.rounds} rounds, interleaved")
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name, seconds in medians.items():
        spread = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:9s} {seconds:6.2f} s  {mib / seconds:7.1f} MiB/s   (rounds: {spread})")
    ratio = medians["download"] / medians["stage"]
    print(f"staging throughput = {ratio:.0%} of the plain parallel download's (goal >= 70 %)")


if __name__ == "__main__":
    main()
