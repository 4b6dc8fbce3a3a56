"""The doors the plug-in pod's isolation proof knocks on, besides those it finds itself."""

from __future__ import annotations

import logging
import socket

from .config import OperatorConfig

log = logging.getLogger(__name__)


def probe_targets(config: OperatorConfig) -> list[str]:
    """The doors the isolation proof tries besides the API server, kubelet and DNS (which the
    pod finds itself): every address of the object store, this operator pod, and extra ones."""
    found = []
    host, _, port = config.store_endpoint.rpartition(":")
    if host and port.isdigit():
        try:
            infos = socket.getaddrinfo(host.strip("[]"), int(port), proto=socket.IPPROTO_TCP)
        except OSError as exc:
            log.warning("cannot resolve the object store %s for the isolation proof: %s", host, exc)
            infos = []
        for address in sorted({info[4][0] for info in infos}):
            found.append(
                f"object-store={address}:{port}" if ":" not in address else f"object-store=[{address}]:{port}"
            )
    if config.pod_ip:
        found.append(f"operator-pod={config.pod_ip}:{config.metrics_port}")
    found += [f"extra={door.strip()}" for door in config.extra_probes.split(",") if door.strip()]
    return found
