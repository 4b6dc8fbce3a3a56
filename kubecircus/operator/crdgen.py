"""Generates the CustomResourceDefinitions in ``crds/`` from the pydantic models in ``api.py``.

``kubecircus crds`` writes them (and the Helm chart's copy); ``kubecircus crds --check`` fails
when the files on disk differ, which CI runs. Pydantic's JSON Schema is turned into a Kubernetes
structural schema: ``$ref`` inlined, optional fields made plain (absent rather than null), titles
dropped, and the Kubernetes extensions (CEL rules, int-or-string, preserve-unknown-fields) added.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .api import GROUP, VERSION, Phase, PluginJobSpec, PluginJobStatus, PluginSpec

#: Spec fields a user may change after creation (everything else is immutable).
MUTABLE_JOB_FIELDS = ("priority", "suspend", "cancel", "invalidated")

KEEP_KEYS = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "format",
    "additionalProperties",
    "x-kubernetes-validations",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "anyOf",
    "exclusiveMinimum",
    "exclusiveMaximum",
}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    node = dict(node)
    if node.get("x-kubernetes-int-or-string"):
        return {
            k: node[k] for k in ("description", "x-kubernetes-int-or-string", "anyOf", "pattern") if k in node
        }
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return {
            k: node[k] for k in ("description", "type", "x-kubernetes-preserve-unknown-fields") if k in node
        }
    if "anyOf" in node:  # Optional[X]: X, absent when unset
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) == 1:
            node = {**_structural(options[0], defs), **{k: v for k, v in node.items() if k != "default"}}
            if node.get("default", 0) is None:
                node.pop("default")
        else:
            node["anyOf"] = options
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**_structural(node.pop("allOf")[0], defs), **node}
    if node.get("default", 0) is None:
        node.pop("default")
    if node.get("additionalProperties") is False:  # structural schemas prune unknown fields anyway
        node.pop("additionalProperties")
    out = {k: _structural(v, defs) for k, v in node.items() if k in KEEP_KEYS}
    if "properties" in out:
        out["properties"] = {k: _structural(v, defs) for k, v in node["properties"].items()}
        out.setdefault("type", "object")
    if out.get("type") == "number" and "format" not in out:
        out["format"] = "double"
    return out


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}))


def _crd(
    kind: str,
    plural: str,
    scope: str,
    schema: dict[str, Any],
    columns: list[dict[str, Any]],
    short_names: list[str],
    description: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "kubecircus"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["kubecircus"],
            },
            "scope": scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}} if "status" in schema["properties"] else {},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": {"description": description, **schema}},
                }
            ],
        },
    }


def _object_schema(**parts: dict[str, Any]) -> dict[str, Any]:
    """The top level of a custom resource: apiVersion, kind, metadata and the given parts."""
    properties = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }
    return {"type": "object", "required": ["spec"], "properties": {**properties, **parts}}


def plugin_crd() -> dict[str, Any]:
    spec = schema_of(PluginSpec)
    spec["description"] = "A registered analysis plug-in: an image honouring the CIRCUS CS plug-in contract."
    schema = _object_schema(spec=spec)
    columns = [
        {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
        {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
        {"name": "Timeout", "type": "integer", "jsonPath": ".spec.timeoutSeconds"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd(
        "Plugin",
        "plugins",
        "Cluster",
        schema,
        columns,
        ["cplugin"],
        "Plugin registers a CIRCUS CS plug-in image that PluginJobs can run.",
    )


def pluginjob_crd() -> dict[str, Any]:
    spec = schema_of(PluginJobSpec)
    spec["description"] = "What to run: the plug-in, its input series and how to queue it."
    frozen = [f for f in spec["properties"] if f not in MUTABLE_JOB_FIELDS]
    unchanged = " && ".join(
        f"(has(self.spec.{f}) == has(oldSelf.spec.{f})) && "
        f"(!has(self.spec.{f}) || self.spec.{f} == oldSelf.spec.{f})"
        for f in frozen
    )
    status = schema_of(PluginJobStatus)
    status["description"] = "What the operator observed and did; written by the operator only."
    status["properties"]["phase"]["enum"] = [p.value for p in Phase]
    schema = _object_schema(spec=spec, status=status)
    schema["x-kubernetes-validations"] = [
        {
            "rule": "!has(self.spec.invalidated) || !self.spec.invalidated || "
            "(has(self.status) && has(self.status.phase) && self.status.phase == 'Succeeded')",
            "message": "spec.invalidated may be set only once the job has Succeeded",
        },
        {
            "rule": "!has(oldSelf.status) || !has(oldSelf.status.phase) || "
            f"oldSelf.status.phase == 'Queued' || ({unchanged})",
            "message": f"once a job is admitted only {', '.join(MUTABLE_JOB_FIELDS)} may change; "
            f"{', '.join(frozen)} are fixed (resubmit or create a new PluginJob)",
        },
    ]
    columns = [
        {"name": "Plugin", "type": "string", "jsonPath": ".spec.plugin"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Progress", "type": "number", "jsonPath": ".status.progress"},
        {"name": "Queue", "type": "integer", "jsonPath": ".status.queuePosition"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
        {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd(
        "PluginJob",
        "pluginjobs",
        "Namespaced",
        schema,
        columns,
        ["pjob"],
        "PluginJob runs a Plugin on DICOM series and records its results.",
    )


def render_all() -> dict[str, str]:
    """File name → YAML text of every CRD."""
    header = "# Generated by `kubecircus crds` from kubecircus/operator/api.py. Do not edit.\n"
    return {
        f"{crd['metadata']['name']}.yaml": header + yaml.safe_dump(crd, sort_keys=False, width=100)
        for crd in (plugin_crd(), pluginjob_crd())
    }


def write(targets: list[Path], check: bool) -> list[str]:
    """Write (or with ``check`` compare) the CRDs into each target folder; returns the differences."""
    differences = []
    for folder in targets:
        for name, text in render_all().items():
            path = folder / name
            if check:
                if not path.exists() or path.read_text() != text:
                    differences.append(str(path))
            else:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return differences
