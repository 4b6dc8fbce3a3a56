"""hack/cluster/lib.sh's component lifecycle, run in bash against a stand-in daemon (a copy of
`sleep` whose name carries the component's): a running component is kept when its command line
and executable are unchanged, restarted when either changed, and one that died is reported
with its exit status and the end of its log."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "hack" / "cluster" / "lib.sh"


def bash(state: Path, script: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(state), "KUBECIRCUS_CLUSTER_STATE": str(state)}
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "{LIB}"; mkdir -p "$RUN"; {script}'],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def daemon(tmp_path: Path):
    """An executable named after the component, so `running` recognises its command line."""
    path = tmp_path / "bin" / "fake-component"
    path.parent.mkdir()
    shutil.copy(shutil.which("sleep"), path)
    yield path
    subprocess.run(["pkill", "-f", str(path)], check=False)


def pid_after(state: Path, daemon: Path, seconds: str) -> int:
    out = bash(state, f'start_daemon fake-component "{daemon}" {seconds}; cat "$RUN/fake-component.pid"')
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_same_command_and_binary_keeps_the_running_process(tmp_path: Path, daemon: Path):
    first = pid_after(tmp_path, daemon, "300")
    assert pid_after(tmp_path, daemon, "300") == first
    os.kill(first, 0)  # still alive


def test_changed_flags_restart_it(tmp_path: Path, daemon: Path):
    first = pid_after(tmp_path, daemon, "300")
    second = pid_after(tmp_path, daemon, "301")
    assert second != first
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)


def test_rebuilt_binary_restarts_it(tmp_path: Path, daemon: Path):
    first = pid_after(tmp_path, daemon, "300")
    stamp = daemon.stat().st_mtime + 10
    os.utime(daemon, (stamp, stamp))
    assert pid_after(tmp_path, daemon, "300") != first


def test_a_component_that_died_is_reported_with_its_status_and_log(tmp_path: Path):
    out = bash(
        tmp_path,
        'start_daemon fake-component bash -c "echo cannot bind its port >&2; exit 3" fake-component;'
        " sleep 1; require_running fake-component",
    )
    assert out.returncode == 1
    assert "fake-component exited (status 3" in out.stderr
    assert "cannot bind its port" in out.stderr
