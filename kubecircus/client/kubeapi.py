"""The cluster as the user's kubeconfig reaches it: the current namespace, Plugins and PluginJobs,
and the plug-in pod's log. Every call has a timeout; failures become one line (``errors``)."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubecircus.operator.api import GROUP, VERSION

from .errors import ClientError, NotFound, from_api

log = logging.getLogger(__name__)

#: (connect, read) seconds for every ordinary call.
TIMEOUT = (5.0, 30.0)
#: A followed log may stay silent as long as a plug-in may run (the client refuses None).
FOLLOW_TIMEOUT = (5.0, 7 * 86400.0)
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class TimedApiClient(client.ApiClient):
    """An ApiClient whose requests time out unless the caller says otherwise."""

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):  # type: ignore[override]
        return super().call_api(method, url, header_params, body, post_params, _request_timeout or TIMEOUT)


def kubeconfig_paths(explicit: str | None, environ: dict[str, str] | None = None) -> list[Path]:
    """The kubeconfig files kubectl would read: --kubeconfig, else $KUBECONFIG (a list), else
    ~/.kube/config."""
    env = os.environ if environ is None else environ
    if explicit:
        return [Path(explicit).expanduser()]
    if env.get("KUBECONFIG"):
        return [Path(p).expanduser() for p in env["KUBECONFIG"].split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def context_namespace(
    contexts: list[dict[str, Any]], current: dict[str, Any] | None, name: str | None
) -> str:
    """The namespace of context ``name`` (the current one when None), "default" when unset."""
    chosen = current
    if name:
        chosen = next((c for c in contexts if c.get("name") == name), None)
        if chosen is None:
            raise ClientError(f"no context named '{name}' in your kubeconfig (kubectl config get-contexts)")
    return ((chosen or {}).get("context") or {}).get("namespace") or "default"


class Kube:
    """The user's cluster: ``namespace`` is ``-n`` or the kubeconfig context's namespace."""

    def __init__(
        self, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
    ) -> None:
        paths = kubeconfig_paths(kubeconfig)
        self.configuration = client.Configuration()
        existing = [str(p) for p in paths if p.is_file()]
        if not existing and not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=self.configuration)
            current = (
                IN_CLUSTER_NAMESPACE.read_text(encoding="utf-8").strip()
                if IN_CLUSTER_NAMESPACE.exists()
                else "default"
            )
        elif not existing:
            where = " or ".join(str(p) for p in paths)
            raise ClientError(f"no kubeconfig: {where} does not exist (set KUBECONFIG or --kubeconfig)")
        else:
            config_file = os.pathsep.join(existing)
            config.load_kube_config(
                config_file=config_file,
                context=context,
                client_configuration=self.configuration,
                persist_config=False,
            )
            contexts, active = config.list_kube_config_contexts(config_file)
            current = context_namespace(contexts, active, context)
        self.namespace = namespace or current
        self.server = self.configuration.host
        self.configuration.retries = 1  # one more try on a refused connection, not urllib3's three
        self.api = TimedApiClient(self.configuration)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    def failure(self, exc: ApiException, doing: str = "") -> ClientError:
        return from_api(exc, doing, self.server)

    def is_local(self) -> bool:
        """Whether the API server is on this machine (a loopback address or one of its own):
        then the cluster's Service addresses are routed here too (the local cluster)."""
        host = urllib.parse.urlsplit(self.server).hostname or ""
        try:
            address = ipaddress.ip_address(socket.gethostbyname(host))
        except (OSError, ValueError):
            return False
        if address.is_loopback:
            return True
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind((str(address), 0))  # binds only to an address this machine holds
            return True
        except OSError:
            return False

    def separate_client(self) -> client.ApiClient:
        """Another ApiClient on the same configuration (the port-forward's websockets replace
        their client's call_api while they connect, so they get one of their own)."""
        return TimedApiClient(self.configuration)

    # --- Plugins and PluginJobs ---------------------------------------------------------------

    def plugin_exists(self, name: str) -> bool | None:
        """True or False; None when this user may not read Plugins (the operator will judge)."""
        try:
            self.custom.get_cluster_custom_object(GROUP, VERSION, "plugins", name)
            return True
        except ApiException as exc:
            if exc.status == 404 and "could not find the requested resource" not in (str(exc.body) or ""):
                return False
            if exc.status == 403:
                log.info("may not read Plugins: %s", exc.reason)
                return None
            raise self.failure(exc) from None

    def get_job(self, name: str) -> dict[str, Any]:
        try:
            return self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "pluginjobs", name
            )
        except ApiException as exc:
            if exc.status == 404 and "could not find the requested resource" not in (str(exc.body) or ""):
                raise NotFound(
                    f"no PluginJob named {name} in namespace {self.namespace} (kubecircus status lists them)"
                ) from None
            raise self.failure(exc) from None

    def job_exists(self, name: str) -> bool:
        try:
            self.get_job(name)
            return True
        except NotFound:
            return False

    def list_jobs(self) -> list[dict[str, Any]]:
        try:
            listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "pluginjobs")
        except ApiException as exc:
            raise self.failure(exc) from None
        return listing.get("items") or []

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        try:
            return self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "pluginjobs", body
            )
        except ApiException as exc:
            if exc.status == 409:
                raise ClientError(
                    f"a PluginJob named {name} already exists in namespace {self.namespace}; "
                    "choose another --name"
                ) from None
            raise self.failure(exc) from None

    def cancel_job(self, name: str) -> dict[str, Any]:
        """spec.cancel=true as a merge patch (the same as kubectl patch --type merge)."""
        try:
            return self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "pluginjobs", name, {"spec": {"cancel": True}}
            )
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(f"no PluginJob named {name} in namespace {self.namespace}") from None
            raise self.failure(exc) from None

    # --- pods ---------------------------------------------------------------------------------

    def pod_log(self, pod: str, container: str) -> str | None:
        """The container's whole log so far; None when the pod or its container is not there."""
        try:
            response = self.core.read_namespaced_pod_log(
                pod, self.namespace, container=container, _preload_content=False
            )
        except ApiException as exc:
            if exc.status in (400, 404):
                return None
            raise self.failure(exc) from None
        try:
            return response.data.decode("utf-8", "replace")
        finally:
            response.release_conn()

    def follow_log(self, pod: str, container: str) -> Iterator[bytes]:
        """The container's log as it is written, until the container ends."""
        try:
            response = self.core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                follow=True,
                _preload_content=False,
                _request_timeout=FOLLOW_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status in (400, 404):
                return
            raise self.failure(exc) from None
        try:
            yield from response.stream(64 * 1024, decode_content=False)
        finally:
            response.release_conn()
