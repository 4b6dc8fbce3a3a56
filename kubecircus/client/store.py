"""Reaching the object store from the user's machine.

Where: ``--store HOST:PORT`` (or ``KUBECIRCUS_STORE_ENDPOINT``); otherwise the bundled MinIO's
Service in the system namespace, at its ClusterIP when MinIO answers there within a second (a
node of a local cluster), else through a port-forward to one of its pods via the API server: a
listener on 127.0.0.1 whose every connection is piped to the pod's port by
``kubernetes.stream.portforward``, the way ``kubectl port-forward`` does it.

Who: ``--store-credentials DIR`` (files accessKey, secretKey), else ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, else the bundled MinIO's admin Secret when the user may read it (a
local cluster's admin). A namespace's own upload user (docs/data-path.md) is the way for others.
"""

from __future__ import annotations

import base64
import logging
import os
import select
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from minio import Minio

from kubecircus.objectstore.client import Credentials, StoreConfig, connect, unavailable

from .defaults import ADMIN_SECRET, STORE_PORT, STORE_SERVICE, SYSTEM_NAMESPACE
from .errors import ClientError, connection_reason, one_line
from .kubeapi import Kube

log = logging.getLogger(__name__)

PROBE_SECONDS = 1.0


@dataclass(frozen=True)
class StoreOptions:
    endpoint: str | None = None
    credentials_dir: str | None = None
    system_namespace: str = SYSTEM_NAMESPACE
    service: str = STORE_SERVICE
    #: Use the port-forward even when the Service address answers (its traffic may be filtered).
    port_forward: bool = False


def parse_endpoint(text: str) -> tuple[str, bool]:
    """``HOST:PORT``, ``http://HOST:PORT`` or ``https://HOST:PORT`` as (host:port, secure)."""
    secure = text.startswith("https://")
    bare = text.removeprefix("https://").removeprefix("http://").rstrip("/")
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit() or "/" in bare or not 0 < int(port) < 65536:
        raise ClientError(f"'{text}' is not a store address HOST:PORT (or https://HOST:PORT)", code=2)
    return bare, secure


def given_endpoint(option: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return option or env.get("KUBECIRCUS_STORE_ENDPOINT") or None


def given_credentials(directory: str | None, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The user's own store keys, when given: a folder first, then the AWS variables."""
    env = os.environ if environ is None else environ
    if directory:
        try:
            return Credentials.from_dir(directory)
        except OSError as exc:
            raise ClientError(
                f"--store-credentials {directory}: {exc.strerror or exc}: {exc.filename} "
                "(the folder holds files accessKey and secretKey)"
            ) from None
    access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if access and secret:
        return Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or None)
    return None


def store_answers(host: str, port: int, timeout: float = PROBE_SECONDS) -> bool:
    """True when MinIO answers its liveness check at host:port. More than a TCP connect: a
    transparent proxy or a filtering middlebox may accept connections to any address."""
    import urllib3

    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeout, read=2 * timeout), retries=False)
    try:
        response = http.request("GET", f"http://{host}:{port}/minio/health/live", preload_content=True)
    except urllib3.exceptions.HTTPError:
        return False
    finally:
        http.clear()
    return response.status == 200


def pipe(one: Any, other: Any, idle: float | None = None) -> None:
    """Copy bytes both ways until either side closes (or nothing moves for ``idle`` seconds)."""
    peer = {id(one): other, id(other): one}
    while True:
        readable, _, _ = select.select([one, other], [], [], idle)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(1 << 16)
            if not data:
                return
            peer[id(sock)].sendall(data)


class PortForward:
    """127.0.0.1:<port> here, the pod's ``remote_port`` there, one websocket per connection."""

    def __init__(self, api: client.ApiClient, namespace: str, pod: str, remote_port: int) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.pod, self.remote_port = namespace, pod, remote_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.last_error: str | None = None
        # kubernetes.stream swaps the ApiClient's call_api while a websocket connects: one at a time.
        self._connecting = threading.Lock()
        threading.Thread(target=self._accept, name="kubecircus-port-forward", daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def open_remote(self) -> tuple[Any, Callable[[], str | None]]:
        """A socket connected to the pod's port through the API server, and what reads the
        error the kubelet may report on the port's error channel (e.g. nothing listens)."""
        from kubernetes.stream import portforward

        with self._connecting:
            forward = portforward(
                self.core.connect_get_namespaced_pod_portforward,
                self.pod,
                self.namespace,
                ports=str(self.remote_port),
            )
        return forward.socket(self.remote_port), lambda: forward.error(self.remote_port)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            remote, error = self.open_remote()
        except Exception as exc:  # the client sees its connection closed; we keep the reason
            self.last_error = one_line(getattr(exc, "reason", None) or exc)
            log.info("port-forward to %s/%s: %s", self.namespace, self.pod, self.last_error)
            conn.close()
            return
        try:
            pipe(conn, remote)
        except OSError as exc:
            log.debug("port-forward connection ended: %s", exc)
        finally:
            conn.close()
            remote.close()
        reported = error()
        if reported:
            self.last_error = one_line(reported)
            log.info("port-forward to %s/%s: %s", self.namespace, self.pod, self.last_error)

    def close(self) -> None:
        self.listener.close()


@dataclass
class Store:
    """A store client, how it is reached (for messages), and the port-forward to close."""

    minio: Minio
    where: str
    forward: PortForward | None = field(default=None, repr=False)

    def failure(self, exc: BaseException, doing: str) -> ClientError:
        """A store error as one line; outages name how the store was reached."""
        from kubecircus.client.errors import translate

        if unavailable(exc) and not getattr(exc, "code", None):
            why = connection_reason(exc)
            if self.forward and self.forward.last_error:
                why = self.forward.last_error
            return ClientError(f"{doing}: cannot reach the object store at {self.where}: {why}")
        translated = translate(exc)
        if translated is None:
            return ClientError(f"{doing}: {one_line(exc)}")
        return ClientError(f"{doing}: {translated.message}")

    def close(self) -> None:
        if self.forward:
            self.forward.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _admin_credentials(kube: Kube, options: StoreOptions) -> Credentials:
    try:
        secret = kube.core.read_namespaced_secret(ADMIN_SECRET, options.system_namespace)
    except ApiException as exc:
        if exc.status in (403, 404):
            raise ClientError(
                "no object-store credentials: give --store-credentials DIR (files accessKey, secretKey) "
                "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, e.g. your namespace's upload user "
                f"(you may not read Secret {options.system_namespace}/{ADMIN_SECRET})"
            ) from None
        raise kube.failure(exc, "reading the store's credentials") from None
    data = secret.data or {}
    try:
        keys = {k: base64.b64decode(v).decode() for k, v in data.items()}
        return Credentials(keys["accessKey"], keys["secretKey"])
    except (KeyError, ValueError):
        raise ClientError(
            f"Secret {options.system_namespace}/{ADMIN_SECRET} holds no accessKey/secretKey"
        ) from None


def _ready_pod(kube: Kube, namespace: str, selector: dict[str, str]) -> str:
    wanted = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    try:
        pods = kube.core.list_namespaced_pod(namespace, label_selector=wanted).items
    except ApiException as exc:
        raise kube.failure(exc, "finding the object store's pod") from None
    for pod in pods:
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        if ready and not pod.metadata.deletion_timestamp:
            return pod.metadata.name
    raise ClientError(f"the object store has no ready pod in {namespace} ({wanted})")


def _service_target(kube: Kube, options: StoreOptions) -> tuple[str, int, int, dict[str, str]]:
    """(ClusterIP, service port, pod port, selector) of the store's Service."""
    try:
        service = kube.core.read_namespaced_service(options.service, options.system_namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise ClientError(
                f"no Service {options.system_namespace}/{options.service} (the bundled object store): "
                "give --store HOST:PORT, or --system-namespace where kubecircus runs"
            ) from None
        if exc.status == 403:
            raise ClientError(
                f"you may not read Service {options.system_namespace}/{options.service}: "
                "give --store HOST:PORT"
            ) from None
        raise kube.failure(exc, "finding the object store") from None
    ports = service.spec.ports or []
    port = next((p for p in ports if p.name == "s3"), ports[0] if ports else None)
    service_port = port.port if port else STORE_PORT
    target = port.target_port if port else STORE_PORT
    pod_port = target if isinstance(target, int) else STORE_PORT
    return service.spec.cluster_ip or "", service_port, pod_port, dict(service.spec.selector or {})


def open_store(kube: Kube, options: StoreOptions, timeout: float = 30.0, pool: int = 16) -> Store:
    """A client of the object store, reached the first way that works."""
    credentials = given_credentials(options.credentials_dir)
    endpoint = given_endpoint(options.endpoint)
    if endpoint:
        address, secure = parse_endpoint(endpoint)
        config = StoreConfig(endpoint=address, secure=secure)
        if credentials is None:  # never sign with the admin keys for a host the user typed
            raise ClientError(
                "--store needs --store-credentials DIR or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            )
        return Store(connect(config, credentials, timeout=timeout, pool=pool), address)
    keys = credentials or _admin_credentials(kube, options)
    if credentials is None:
        log.warning(
            "using the object store's admin keys from Secret %s/%s (a local cluster's admin); others "
            "give --store-credentials",
            options.system_namespace,
            ADMIN_SECRET,
        )
    cluster_ip, service_port, pod_port, selector = _service_target(kube, options)
    # The Service address directly only where it is this machine's own cluster: elsewhere a
    # 10.96.x.y may be routed to the local network, and plain HTTP would hand whoever answers
    # the series (and signed requests). Through the API server (TLS) otherwise.
    direct = cluster_ip and cluster_ip != "None" and not options.port_forward and kube.is_local()
    if direct and store_answers(cluster_ip, service_port):
        address = f"{cluster_ip}:{service_port}"
        log.info("object store at its Service address %s", address)
        return Store(connect(StoreConfig(endpoint=address), keys, timeout=timeout, pool=pool), address)
    if not selector:
        raise ClientError(
            f"Service {options.system_namespace}/{options.service} selects no pods: give --store"
        )
    pod = _ready_pod(kube, options.system_namespace, selector)
    forward = PortForward(kube.separate_client(), options.system_namespace, pod, pod_port)
    log.info("object store through a port-forward to %s/%s:%d", options.system_namespace, pod, pod_port)
    where = f"{forward.endpoint} (port-forward to pod {options.system_namespace}/{pod})"
    return Store(
        connect(StoreConfig(endpoint=forward.endpoint), keys, timeout=timeout, pool=pool), where, forward
    )
