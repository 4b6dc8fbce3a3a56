"""Following a job: what the bar says, and when following ends."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kubecircus.client import follow as follow_module
from kubecircus.client.errors import ClientError, NotFound
from kubecircus.client.follow import follow, note, phase_line


def test_notes_say_what_a_queued_job_waits_for():
    assert note({}) == "waiting for the operator to see the job"
    assert note({"phase": "Queued", "queuePosition": 1}) == "runs next"
    assert note({"phase": "Queued", "queuePosition": 4}) == "position 4 in the queue"
    assert note({"phase": "Queued", "queuePosition": 4}, {"suspend": True}) == "suspended (spec.suspend)"
    assert note({"phase": "Running", "message": "plug-in running"}) == "plug-in running"


def test_phase_lines_name_the_reason_once_finished():
    assert (
        phase_line(1.25, {"phase": "Staging", "message": "staging 1 input"})
        == "   1.2 s  Staging  staging 1 input"
    )
    assert phase_line(9, {"phase": "Failed", "reason": "ExitCode", "message": "exit 3"}) == (
        "   9.0 s  Failed (ExitCode)  exit 3"
    )
    assert phase_line(0, {}) == "   0.0 s  Submitted"


class FakeKube:
    """The cluster as a sequence of the job's states (get_job is the only call follow makes)."""

    def __init__(self, states):
        self.states = list(states)

    def get_job(self, name):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(state, Exception):
            raise state
        return {"metadata": {"name": name}, "spec": {}, "status": state}


def quiet() -> Console:
    return Console(file=io.StringIO(), force_terminal=False)


def test_follow_returns_the_final_status_and_prints_each_phase_once(monkeypatch):
    monkeypatch.setattr(follow_module.time, "sleep", lambda s: None)
    console = quiet()
    running = [{"phase": "Running", "progress": 0.5}, {"phase": "Running", "progress": 0.7}]
    kube = FakeKube(
        [{}, {"phase": "Queued"}, *running, {"phase": "Succeeded", "progress": 1, "reason": "Completed"}]
    )
    final = follow(kube, "j", console)
    assert final["phase"] == "Succeeded"
    lines = [line.split("s  ", 1)[1] for line in console.file.getvalue().splitlines() if " s  " in line]
    assert lines == ["Submitted", "Queued", "Running", "Succeeded (Completed)"]


def test_a_job_deleted_while_followed_is_one_line(monkeypatch):
    monkeypatch.setattr(follow_module.time, "sleep", lambda s: None)
    kube = FakeKube([{"phase": "Queued"}, NotFound("no PluginJob named j in namespace ns")])
    with pytest.raises(ClientError, match="the job j was deleted while we followed it"):
        follow(kube, "j", quiet())


def test_a_short_outage_is_ridden_out(monkeypatch):
    monkeypatch.setattr(follow_module.time, "sleep", lambda s: None)
    kube = FakeKube([ClientError("cannot reach the Kubernetes API server"), {"phase": "Cancelled"}])
    assert follow(kube, "j", quiet())["phase"] == "Cancelled"


def test_the_timeout_says_the_job_goes_on(monkeypatch):
    monkeypatch.setattr(follow_module.time, "sleep", lambda s: None)
    with pytest.raises(ClientError, match="did not finish within 0 s; it goes on"):
        follow(FakeKube([{"phase": "Running"}]), "j", quiet(), timeout=0)


def test_ctrl_c_while_following_says_the_job_goes_on(monkeypatch):
    from kubecircus.client import commands

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(follow_module, "follow", interrupted)
    with pytest.raises(ClientError) as stopped:
        commands._follow(FakeKube([{}]), "j", quiet())
    assert stopped.value.code == 130
    assert stopped.value.message == "stopped following j; it goes on (kubecircus status j)"


def test_brackets_in_the_operators_words_are_text_not_markup(monkeypatch):
    monkeypatch.setattr(follow_module.time, "sleep", lambda s: None)
    console = Console(file=io.StringIO(), force_terminal=True, markup=False)
    message = "input 0: s3://dicom/[/x]/ is not yours [bold]"
    final = follow(
        FakeKube([{"phase": "Queued", "message": message}, {"phase": "Failed", "message": message}]),
        "j",
        console,
    )
    assert final["phase"] == "Failed"
    assert "[/x]/ is not yours [bold]" in console.file.getvalue()


def test_the_commands_console_prints_brackets_as_they_are(monkeypatch, capsys):
    from kubecircus import cli
    from kubecircus.client import commands

    def noting(args, context, out, console):
        console.print("note: [/x] [red]kept[/red]")
        return 0

    monkeypatch.setitem(commands.__dict__, "status", noting)
    assert cli.main(["status"]) == 0
    assert capsys.readouterr().err == "note: [/x] [red]kept[/red]\n"
