"""The trusted steps around a plug-in run: ``kubecircus worker stage|prepare|collect``.

- ``stage`` (its own pod, egress to the object store only): DICOM from the store → converted
  volumes (through the per-namespace cache) → ``in/{id}.mhd|raw|json`` on the job's workspace.
- ``prepare`` (init container of the plug-in pod, which has no network): checks the workspace
  against the staging manifest, empties ``out/``, and proves the pod is isolated.
- ``collect`` (its own pod): treats ``out/`` as hostile, validates ``results.json``, uploads
  every file with a manifest.

Each step ends with an exit code and a JSON report in the termination message (``report.py``),
which is all the operator reads of it. No module here imports kopf or the Kubernetes client.
"""
