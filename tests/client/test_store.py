"""Naming the store and its credentials, and the port-forward's local side."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from kubecircus.client.errors import ClientError
from kubecircus.client.kubeapi import context_namespace, kubeconfig_paths
from kubecircus.client.store import PortForward, given_credentials, given_endpoint, parse_endpoint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("minio.example.org:9000", ("minio.example.org:9000", False)),
        ("http://10.0.0.5:9000/", ("10.0.0.5:9000", False)),
        ("https://s3.example.org:443", ("s3.example.org:443", True)),
    ],
)
def test_store_addresses(text, expected):
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize(
    "text", ["minio", "minio:", "minio:port", "https://x:9000/bucket", ":9000", "x:70000"]
)
def test_bad_store_addresses_are_usage_errors(text):
    with pytest.raises(ClientError) as refused:
        parse_endpoint(text)
    assert refused.value.code == 2


def test_the_option_wins_over_the_environment():
    env = {"KUBECIRCUS_STORE_ENDPOINT": "env:9000"}
    assert given_endpoint("opt:9000", env) == "opt:9000"
    assert given_endpoint(None, env) == "env:9000"
    assert given_endpoint(None, {}) is None


def test_credentials_from_a_folder_then_the_aws_variables(tmp_path):
    (tmp_path / "accessKey").write_text("folder-key\n")
    (tmp_path / "secretKey").write_text("folder-secret\n")
    env = {"AWS_ACCESS_KEY_ID": "env-key", "AWS_SECRET_ACCESS_KEY": "env-secret"}
    assert given_credentials(str(tmp_path), env).access_key == "folder-key"
    from_env = given_credentials(None, env)
    assert (from_env.access_key, from_env.secret_key, from_env.session_token) == (
        "env-key",
        "env-secret",
        None,
    )
    assert given_credentials(None, {"AWS_ACCESS_KEY_ID": "only-half"}) is None


def test_a_credentials_folder_without_keys_is_one_line(tmp_path):
    with pytest.raises(ClientError, match="accessKey and secretKey"):
        given_credentials(str(tmp_path), {})


def test_kubeconfig_files_as_kubectl_finds_them():
    assert kubeconfig_paths("~/k") == [Path.home() / "k"]
    assert kubeconfig_paths("~/k", {"KUBECONFIG": "/a"}) == [Path.home() / "k"]
    assert kubeconfig_paths(None, {"KUBECONFIG": "/a:/b"}) == [Path("/a"), Path("/b")]
    assert str(kubeconfig_paths(None, {})[0]).endswith(".kube/config")


def test_the_namespace_comes_from_the_chosen_context():
    contexts = [
        {"name": "lab", "context": {"cluster": "c", "namespace": "radiology-a"}},
        {"name": "bare", "context": {"cluster": "c"}},
    ]
    assert context_namespace(contexts, contexts[0], None) == "radiology-a"
    assert context_namespace(contexts, contexts[0], "bare") == "default"
    with pytest.raises(ClientError, match="no context named 'x'"):
        context_namespace(contexts, contexts[0], "x")


def test_the_port_forward_pipes_each_local_connection_to_its_own_remote_socket(monkeypatch):
    """The API server side is replaced by a local echo server: this checks the listener and the
    piping, both ways, for several connections at once."""
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return

            def serve(c: socket.socket) -> None:
                with c:
                    while data := c.recv(4096):
                        c.sendall(data.upper())

            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=echo, daemon=True).start()
    opened = []

    def open_remote(self):
        opened.append(1)
        return socket.create_connection(server.getsockname()), lambda: None

    monkeypatch.setattr(PortForward, "open_remote", open_remote)
    forward = PortForward(api=None, namespace="kubecircus-system", pod="minio-0", remote_port=9000)
    try:
        host, port = forward.endpoint.split(":")
        clients = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
        for index, conn in enumerate(clients):
            conn.sendall(f"hello {index}".encode())
        assert [c.recv(100) for c in clients] == [b"HELLO 0", b"HELLO 1", b"HELLO 2"]
        assert len(opened) == 3
        for conn in clients:
            conn.close()
    finally:
        forward.close()
        server.close()


def test_an_error_the_kubelet_reports_is_kept(monkeypatch):
    def open_remote(self):
        mine, theirs = socket.socketpair()
        theirs.close()  # the pod side ends at once
        return mine, lambda: "error forwarding port 9000: connection refused"

    monkeypatch.setattr(PortForward, "open_remote", open_remote)
    forward = PortForward(api=None, namespace="s", pod="minio-0", remote_port=9000)
    try:
        host, port = forward.endpoint.split(":")
        conn = socket.create_connection((host, int(port)), timeout=5)
        assert conn.recv(10) == b""
        deadline = time.monotonic() + 5
        while forward.last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert forward.last_error == "error forwarding port 9000: connection refused"
    finally:
        forward.close()


def test_a_failed_remote_closes_the_local_connection_and_keeps_the_reason(monkeypatch):
    def open_remote(self):
        raise OSError('pods "minio-0" is forbidden')

    monkeypatch.setattr(PortForward, "open_remote", open_remote)
    forward = PortForward(api=None, namespace="s", pod="minio-0", remote_port=9000)
    try:
        host, port = forward.endpoint.split(":")
        conn = socket.create_connection((host, int(port)), timeout=5)
        assert conn.recv(10) == b""  # closed
        assert forward.last_error == 'pods "minio-0" is forbidden'
    finally:
        forward.close()


def test_the_service_address_counts_only_when_minio_answers_there():
    """A transparent proxy accepts any connection: the liveness answer decides."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from kubecircus.client.store import store_answers

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/minio/health/live" and self.server.minio else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    servers = []
    for minio in (True, False):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.minio = minio
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        assert store_answers("127.0.0.1", servers[0].server_address[1])
        assert not store_answers("127.0.0.1", servers[1].server_address[1])
        closed = socket.create_server(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        assert not store_answers("127.0.0.1", port)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
