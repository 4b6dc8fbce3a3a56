"""PluginJobs as the commands see them: names, the body ``submit`` creates, the status table and
a job's details. Pure: no cluster, no store."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from kubecircus.objectstore import layout
from kubecircus.operator.api import API_VERSION, RANGE_PATTERN

FINISHED = frozenset({"Succeeded", "Failed", "Cancelled"})
#: A DNS-1123 subdomain, what Kubernetes accepts as a custom object's name.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_NAME = 253
#: Generated names stay a DNS label (63): readable in tables, whole in the kubecircus.io/job label.
MAX_GENERATED = 63
_SERIES_UID = re.compile(r"^[0-9.]{1,64}$")
_RANGE = re.compile(RANGE_PATTERN)
STAMP = "%Y%m%d-%H%M%S"
COLUMNS = ("NAME", "PLUGIN", "PHASE", "PROGRESS", "POSITION", "AGE", "REASON")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a PluginJob, or None."""
    if not name or len(name) > MAX_NAME:
        return f"'{name}' is not a job name: 1 to {MAX_NAME} characters"
    if not _NAME.match(name):
        return (
            f"'{name}' is not a job name: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def generated_name(plugin: str, now: datetime) -> str:
    """``<plugin>-<YYYYmmdd-HHMMSS>`` as a valid DNS label, whatever the plug-in's name holds."""
    stamp = now.strftime(STAMP)
    base = re.sub(r"[^a-z0-9-]+", "-", plugin.lower()).strip("-")
    base = base[: MAX_GENERATED - len(stamp) - 1].rstrip("-")
    return f"{base}-{stamp}" if base else f"job-{stamp}"


def series_uid_problem(uid: str) -> str | None:
    if not _SERIES_UID.match(uid):
        return f"'{uid}' is not a SeriesInstanceUID: digits and dots, at most 64"
    return None


def range_problem(text: str) -> str | None:
    if len(text) > 40 or not _RANGE.match(text):
        return f"'{text}' is not a range START:END:DELTA, e.g. 1:40:1 or 40:1:-2 (DELTA not 0)"
    return None


def upload_prefix(namespace: str, name: str) -> str:
    """Where ``submit`` puts the series: under the namespace, as the data path requires."""
    return f"{namespace}/{name}/"


def prefix_problem(namespace: str, bucket: str, prefix: str) -> str | None:
    """The namespace rule as the operator applies it (the bucket list is the cluster's to check)."""
    return layout.input_refusal(namespace, bucket, prefix, (bucket,))


#: The chart's default bucket for kubecircus's own objects (outputs, the conversion cache).
SYSTEM_BUCKET = "kubecircus"


def job_body(
    name: str,
    namespace: str,
    plugin: str,
    bucket: str,
    prefix: str,
    series_uid: str | None = None,
    slice_range: str | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    """The PluginJob ``submit`` creates: one input, the uploaded folder."""
    if bucket == SYSTEM_BUCKET:  # jobs/... and cache/... live there: never an input
        raise ValueError(f"{bucket} is kubecircus's own bucket, not an input bucket: use --bucket dicom")
    problem = prefix_problem(namespace, bucket, prefix)
    if problem:
        raise ValueError(problem)
    item: dict[str, Any] = {"source": {"bucket": bucket, "prefix": prefix}}
    if series_uid:
        item["seriesInstanceUID"] = series_uid
    if slice_range:
        item["range"] = slice_range
    spec: dict[str, Any] = {"plugin": plugin, "inputs": [item]}
    if priority is not None:
        spec["priority"] = priority
    return {
        "apiVersion": API_VERSION,
        "kind": "PluginJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(since: datetime | None, now: datetime) -> str:
    """kubectl's short ages: 45s, 3m20s, 12m, 5h, 2d3h, 40d, 2y."""
    if since is None:
        return "<unknown>"
    seconds = max(0, int((now - since).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if days < 2:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def percent(progress: object) -> str:
    if not isinstance(progress, int | float):
        return ""
    return f"{round(float(progress) * 100)}%"


def table_row(body: dict[str, Any], now: datetime) -> tuple[str, ...]:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    position = status.get("queuePosition")
    return (
        body["metadata"]["name"],
        str(spec.get("plugin", "")),
        str(status.get("phase") or ("Suspended" if spec.get("suspend") else "")),
        percent(status.get("progress")),
        "" if position is None else str(position),
        age(parse_time(body["metadata"].get("creationTimestamp")), now),
        str(status.get("reason") or ""),
    )


def table(bodies: list[dict[str, Any]], now: datetime | None = None) -> list[tuple[str, ...]]:
    """The header and one row per job, oldest first (the order they were submitted in)."""
    now = now or datetime.now(UTC)
    ordered = sorted(
        bodies, key=lambda b: (b["metadata"].get("creationTimestamp", ""), b["metadata"]["name"])
    )
    return [COLUMNS, *(table_row(b, now) for b in ordered)]


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Columns as kubectl aligns them: left-aligned, three spaces apart, no trailing blanks."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def outputs_location(status: dict[str, Any]) -> str | None:
    outputs = status.get("outputs") or {}
    if not outputs.get("bucket") or outputs.get("prefix") is None:
        return None
    return f"s3://{outputs['bucket']}/{outputs['prefix']}"


def details(body: dict[str, Any], now: datetime | None = None) -> list[tuple[str, str]]:
    """One job, field by field (what ``kubecircus status JOB`` prints)."""
    now = now or datetime.now(UTC)
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    created = meta.get("creationTimestamp", "")
    rows: list[tuple[str, str]] = [
        ("Name", meta["name"]),
        ("Namespace", meta.get("namespace", "")),
        ("Plugin", str(spec.get("plugin", ""))),
        ("Priority", str(spec.get("priority", 0))),
        ("Phase", str(status.get("phase") or "(not seen by the operator yet)")),
    ]
    optional = [
        ("Reason", status.get("reason")),
        ("Message", status.get("message")),
        ("Progress", percent(status.get("progress"))),
        ("Queue position", status.get("queuePosition")),
        ("Suspended", "yes" if spec.get("suspend") else None),
        ("Cancel requested", "yes" if spec.get("cancel") and status.get("phase") not in FINISHED else None),
        ("Exit code", status.get("exitCode")),
        (
            "Created",
            f"{created} ({age(parse_time(created), now)} ago)",
        ),
        ("Started", status.get("startTime")),
        ("Completed", status.get("completionTime")),
        ("Image that ran", status.get("pluginImageID")),
    ]
    rows += [(k, str(v)) for k, v in optional if v not in (None, "")]
    for index, item in enumerate(spec.get("inputs") or []):
        source = item.get("source") or {}
        text = f"s3://{source.get('bucket', '')}/{source.get('prefix', '')}"
        for key in ("seriesInstanceUID", "range"):
            if item.get(key):
                text += f" {key}={item[key]}"
        rows.append((f"Input {index}", text))
    location = outputs_location(status)
    if location:
        outputs = status["outputs"]
        count, size = outputs.get("fileCount"), outputs.get("totalBytes")
        rows.append(("Outputs", f"{location} ({count} files, {size} bytes in out/)"))
    if status.get("logRef"):
        rows.append(("Log", f"s3://{status['logRef']['bucket']}/{status['logRef']['key']}"))
    return rows


def format_details(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in rows)


def results_json(status: dict[str, Any]) -> str | None:
    results = (status.get("outputs") or {}).get("results")
    return None if results is None else json.dumps(results, indent=2, sort_keys=False)
