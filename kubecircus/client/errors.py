"""Expected failures as one line: :class:`ClientError` and the translation of the libraries'
exceptions (Kubernetes API, kubeconfig, connections, the object store) into it.

``kubecircus.cli.main`` prints ``kubecircus: <message>`` on stderr and exits with the error's
code; nothing expected ends in a traceback.
"""

from __future__ import annotations

import json
import re

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ClientError(Exception):
    """A failure the user can act on: one line, and the exit code to end with."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(one_line(message))
        self.message = one_line(message)
        self.code = code

    def __str__(self) -> str:
        return self.message


class NotFound(ClientError):
    """The object asked for does not exist."""


def printable(text: object, keep: str = "\n\t") -> str:
    """``text`` with every control character (C0, C1, DEL; ESC above all) and bidirectional
    override shown as an escape (``\\x1b``): job messages, logs and object keys quote text a
    plug-in or tenant wrote, which must not drive the user's terminal (clear the screen, set the
    clipboard through OSC 52, retitle the window, reorder what is shown)."""
    out = []
    for char in str(text):
        code = ord(char)
        if char in keep:
            out.append(char)
        elif code < 0x20 or 0x7F <= code < 0xA0 or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def one_line(text: object) -> str:
    return printable(" ".join(str(text).split()), keep="")


def api_message(exc: object) -> str:
    """The message of a Kubernetes API error: the Status object's ``message`` when the body is
    one, else the HTTP reason."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            status = json.loads(body)
        except ValueError:
            status = None
        if isinstance(status, dict) and status.get("message"):
            return one_line(status["message"])
    reason = getattr(exc, "reason", None) or ""
    return one_line(reason) or f"HTTP {getattr(exc, 'status', '?')}"


def connection_reason(exc: BaseException) -> str:
    """Why a connection failed, without urllib3's object reprs: 'Connection refused',
    'timed out', 'Name or service not known', ..."""
    reason = getattr(exc, "reason", None) or exc
    text = one_line(reason)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return errno.group(1).strip()
    if "timed out" in text.lower():
        return "timed out"
    if "RemoteDisconnected" in text:
        return "the connection was closed without a response"
    text = re.sub(r"<[^>]*object at 0x[0-9a-f]+>:?\s*", "", text)
    return text.strip(" :(),") or type(reason).__name__


def from_api(exc: object, doing: str = "", server: str = "") -> ClientError:
    """An ``ApiException`` as one line. 422 is the API server's validation (the CRD schema and
    its CEL rules): ``the API server refused the job: ...``."""
    status = getattr(exc, "status", 0) or 0
    message = api_message(exc)
    prefix = f"{doing}: " if doing else ""
    if status == 0:  # the client's own wrapping of a connection or websocket failure
        where = f" at {server}" if server else ""
        return ClientError(f"{prefix}cannot reach the Kubernetes API server{where}: {message}")
    if status == 401:
        return ClientError(
            f"{prefix}the API server did not accept your credentials (401): check your kubeconfig"
        )
    if status == 403:
        return ClientError(f"{prefix}not allowed: {message}")
    if status == 404 and "could not find the requested resource" in message:
        return ClientError(
            f"{prefix}this cluster has no kubecircus.io/v1alpha1 API: is kubecircus installed "
            "(kubectl get crd pluginjobs.kubecircus.io)?"
        )
    if status == 422:
        return ClientError(f"the API server refused the job: {message}")
    return ClientError(f"{prefix}{message} ({status})" if status >= 500 else f"{prefix}{message}")


def translate(exc: BaseException, server: str = "") -> ClientError | None:
    """The one-line :class:`ClientError` for an expected failure, or None for a bug (which then
    shows its traceback). ``server`` is the API server's address, for connection failures."""
    import urllib3
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from minio.error import S3Error

    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, ApiException):
        return from_api(exc, server=server)
    if isinstance(exc, ConfigException):
        return ClientError(
            f"no usable kubeconfig ({one_line(exc)}): set KUBECONFIG or --kubeconfig to your cluster's"
        )
    if isinstance(exc, S3Error):
        hint = ""
        if exc.code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            hint = " (check --store-credentials or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        where = f" {exc.bucket_name}/{exc.object_name or ''}" if exc.bucket_name else ""
        return ClientError(f"the object store refused{where}: {exc.code}: {exc.message}{hint}")
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        where = f" at {server}" if server else ""  # the store's own failures are worded by store.py
        return ClientError(f"cannot reach the Kubernetes API server{where}: {connection_reason(exc)}")
    return None
