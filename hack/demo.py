"""``make demo``: a real plug-in analyses a real series on the local cluster, end to end.

After ``make deploy`` (which ``make demo`` runs first), this script:
1. registers the lesion-candidates plug-in (examples/plugin.yaml);
2. makes a small oblique CT phantom with lesions (DICOM, ~3 MiB) and uploads it to the bundled
   MinIO under ``s3://dicom/<namespace>/demo/ct/`` (the namespace rule: a job reads only its
   namespace's keys);
3. submits a PluginJob, follows it phase by phase, and prints the candidates it found and where
   its outputs, log and manifest are.

Exits 0 only when the job Succeeded. Running it again replaces the previous demo job.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from kubernetes import client  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

from e2ekit import GROUP, INPUTS, VERSION, bundled_store  # noqa: E402
from kubetest import api_client  # noqa: E402
from phantom import BLOBS_0, OBLIQUE, phantom, write_ct  # noqa: E402
from storetest import upload_folder  # noqa: E402

FINISHED = {"Succeeded", "Failed", "Cancelled"}


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - a command-line script


def register_plugin(custom: client.CustomObjectsApi) -> str:
    body = yaml.safe_load((ROOT / "examples" / "plugin.yaml").read_text())
    name = body["metadata"]["name"]
    try:
        custom.create_cluster_custom_object(GROUP, VERSION, "plugins", body)
        say(f"registered Plugin {name}")
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = custom.get_cluster_custom_object(GROUP, VERSION, "plugins", name)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        custom.replace_cluster_custom_object(GROUP, VERSION, "plugins", name, body)
        say(f"Plugin {name} is registered")
    return name


def upload_series(core: client.CoreV1Api, namespace: str) -> str:
    prefix = f"{namespace}/demo/ct/"
    with tempfile.TemporaryDirectory() as tmp:
        values, _ = phantom(OBLIQUE, BLOBS_0)
        write_ct(OBLIQUE, values, Path(tmp))
        count = len(upload_folder(bundled_store(core), Path(tmp), INPUTS, prefix))
    size = f"{OBLIQUE.columns}x{OBLIQUE.rows}x{OBLIQUE.slices}"
    say(f"uploaded a {size} CT phantom ({count} DICOM files) to s3://{INPUTS}/{prefix}")
    return prefix


def submit(custom: client.CustomObjectsApi, namespace: str, plugin: str, prefix: str) -> None:
    try:
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "pluginjobs", "demo")
        while True:  # the previous demo job and its outputs go first
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "pluginjobs", "demo")
            time.sleep(0.5)
    except ApiException as exc:
        if exc.status != 404:
            raise
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PluginJob",
        "metadata": {"name": "demo", "namespace": namespace},
        "spec": {"plugin": plugin, "inputs": [{"source": {"bucket": INPUTS, "prefix": prefix}}]},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "pluginjobs", body)
    say(f"submitted PluginJob {namespace}/demo   (kubectl -n {namespace} get pluginjob demo -w)")


def follow(custom: client.CustomObjectsApi, namespace: str, timeout: float) -> dict:
    deadline, last = time.monotonic() + timeout, None
    started = time.monotonic()
    while time.monotonic() < deadline:
        job = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "pluginjobs", "demo")
        status = job.get("status") or {}
        phase = status.get("phase")
        if phase and phase != last:
            say(f"  {time.monotonic() - started:5.1f} s  {phase:<11} {status.get('message', '')}")
            last = phase
        if phase in FINISHED:
            return status
        time.sleep(0.3)
    raise SystemExit(f"demo: the job did not finish within {timeout:.0f} s (kubectl describe pluginjob demo)")


def report(status: dict, namespace: str) -> int:
    if status["phase"] != "Succeeded":
        say(f"demo: the job ended {status['phase']} ({status.get('reason')}): {status.get('message')}")
        return 1
    for item in status.get("inputs", []):
        hit = "from the cache" if item.get("cacheHit") else "converted"
        say(f"input {item['id']}: {'x'.join(map(str, item['size']))} voxels, {hit}")
    results = status.get("outputs", {}).get("results") or {}
    candidates = results.get("results", {}).get("lesionCandidates", [])
    say(f"lesion candidates: {len(candidates)}")
    for c in candidates:
        x, y, z = c["location"]
        size, confidence = c["volumeSize"], c["confidence"]
        say(f"  #{c['rank']}  voxel ({x}, {y}, {z})  {size:.0f} mm3  confidence {confidence:.2f}")
    outputs = status["outputs"]
    where = f"s3://{outputs['bucket']}/{outputs['prefix']}"
    say(f"outputs: {where}  ({outputs['fileCount']} files in out/, manifest.json, plugin-log.txt)")
    say(f"plug-in image that ran: {status.get('pluginImageID')}")
    say(f"more: kubectl -n {namespace} describe pluginjob demo")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    api = api_client()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    plugin = register_plugin(custom)
    prefix = upload_series(core, args.namespace)
    submit(custom, args.namespace, plugin, prefix)
    return report(follow(custom, args.namespace, args.timeout), args.namespace)


if __name__ == "__main__":
    sys.exit(main())
