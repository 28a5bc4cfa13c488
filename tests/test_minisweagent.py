"""`agent_runtime.minisweagent`: mini-swe-agent environments on the Rust shell, compared with
mini-swe-agent's own `LocalEnvironment` (same contract), and driven by its `DefaultAgent`."""

from __future__ import annotations

import os
import sys
import time

import pytest

if sys.version_info < (3, 10):
    pytest.skip("mini-swe-agent needs Python 3.10+", allow_module_level=True)
pytest.importorskip("minisweagent", reason="mini-swe-agent is not installed (pip install mini-swe-agent)")

from agent_runtime.minisweagent import RemoteRustEnvironment, RustEnvironment
from minisweagent.agents.default import DefaultAgent
from minisweagent.environments import get_environment
from minisweagent.environments.local import LocalEnvironment
from minisweagent.exceptions import Submitted
from minisweagent.models.test_models import DeterministicModel, make_output
from servers import ServerProcess

SENTINEL = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"


@pytest.fixture(scope="module")
def server():
    s = ServerProcess(["serve", "--swerex", "127.0.0.1:0", "--token", "tok"])
    yield s
    assert s.stop() == 0, "".join(s.lines)


def envs(tmp_path, server=None, **kw):
    out = [RustEnvironment(cwd=str(tmp_path), **kw)]
    if server is not None:
        out.append(RemoteRustEnvironment(url=server.addr, token="tok", cwd=str(tmp_path), **kw))
    return out


@pytest.mark.parametrize(
    "command",
    [
        "echo hi",
        "echo out; echo err >&2; exit 3",
        "pwd",
        "cd / && pwd",
        "printf 'no newline'",
        "echo $MY_VAR",
        "exit 0",
        "for i in 1 2 3; do echo $i; done",
        "echo 'unterminated",
    ],
)
def test_same_results_as_local_environment(tmp_path, server, command):
    local = LocalEnvironment(cwd=str(tmp_path), env={"MY_VAR": "v"})
    expected = local.execute({"command": command})
    for env in envs(tmp_path, server, env={"MY_VAR": "v"}):
        got = env.execute({"command": command})
        assert got == expected, type(env).__name__


def test_cd_does_not_persist_by_default(tmp_path, server):
    (tmp_path / "sub").mkdir()
    for env in envs(tmp_path, server):
        env.execute({"command": "cd sub"})
        assert env.execute({"command": "pwd"})["output"] == f"{tmp_path}\n"
        assert env.execute({"command": "pwd"}, cwd=str(tmp_path / "sub"))["output"] == f"{tmp_path / 'sub'}\n"


def test_persistent_session_keeps_state(tmp_path, server):
    (tmp_path / "sub").mkdir()
    for env in envs(tmp_path, server, persistent=True):
        assert env.execute({"command": "cd sub && X=42"})["returncode"] == 0
        got = env.execute({"command": "pwd; echo $X"})
        assert got == {"output": f"{tmp_path / 'sub'}\n42\n", "returncode": 0, "exception_info": ""}
        assert env.execute({"command": "false"})["returncode"] == 1
        # `exit` ends the shell; the next step gets a fresh one.
        env.execute({"command": "exit 5"})
        assert env.execute({"command": "echo again"})["output"] == "again\n"
        env.close()


@pytest.mark.parametrize("persistent", [False, True])
def test_timeout_kills_the_process_group(tmp_path, server, persistent):
    marker = tmp_path / "survived"
    command = f"echo started; (sleep 2; touch {marker}) & sleep 30"
    for env in envs(tmp_path, server, persistent=persistent):
        t0 = time.monotonic()
        got = env.execute({"command": command}, timeout=1)
        assert time.monotonic() - t0 < 20
        assert got["returncode"] == -1
        assert got["output"].startswith("started")
        assert got["exception_info"] == (
            f"An error occurred while executing the command: Command '{command}' timed out after 1 seconds"
        )
        assert got["extra"]["exception_type"] == "TimeoutExpired"
        # Still usable afterwards.
        assert env.execute({"command": "echo ok"})["output"] == "ok\n"
    time.sleep(2.5)
    if not persistent:
        # A fresh shell's process group is killed whole, background jobs included.
        assert not marker.exists()


def test_timeout_matches_local_environment(tmp_path):
    local = LocalEnvironment(cwd=str(tmp_path)).execute({"command": "echo a; sleep 5"}, timeout=1)
    ours = RustEnvironment(cwd=str(tmp_path)).execute({"command": "echo a; sleep 5"}, timeout=1)
    assert ours == local


def test_submit_sentinel(tmp_path, server):
    for env in envs(tmp_path, server):
        with pytest.raises(Submitted) as ei:
            env.execute({"command": f"echo {SENTINEL}; echo the patch"})
        msg = ei.value.messages[0]
        assert msg["extra"] == {"exit_status": "Submitted", "submission": "the patch\n"}
        # Not on the first line, or a failing command: no submission.
        assert env.execute({"command": f"echo x; echo {SENTINEL}"})["returncode"] == 0
        assert env.execute({"command": f"echo {SENTINEL}; false"})["returncode"] == 1


def test_output_is_capped_with_a_marker(tmp_path, server):
    for env in envs(tmp_path, server, max_output=10_000):
        got = env.execute({"command": "head -c 1000000 /dev/zero | tr '\\0' a"})
        assert got["returncode"] == 0
        assert len(got["output"]) < 20_000
        assert "omitted" in got["output"] or "dropped" in got["output"] or "bytes" in got["output"]


def test_environment_class_import_path(tmp_path):
    env = get_environment(
        {"environment_class": "agent_runtime.minisweagent.RustEnvironment", "cwd": str(tmp_path), "timeout": 7}
    )
    assert isinstance(env, RustEnvironment) and env.config.timeout == 7
    assert env.serialize()["info"]["config"]["environment_type"] == "agent_runtime.minisweagent.RustEnvironment"
    assert env.get_template_vars()["system"] == os.uname().sysname


def test_default_agent_solves_a_scripted_task(tmp_path, server):
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    outputs = [
        make_output("Look first.", [{"command": "cat calc.py"}]),
        make_output("Fix it.", [{"command": "sed -i 's/a - b/a + b/' calc.py"}]),
        make_output("Check.", [{"command": "python3 -c 'import calc; assert calc.add(2, 3) == 5; print(\"ok\")'"}]),
        make_output("Done.", [{"command": f"echo {SENTINEL} && cat calc.py"}]),
    ]
    for env in envs(tmp_path, server):
        (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
        agent = DefaultAgent(
            DeterministicModel(outputs=outputs),
            env,
            system_template="You are a test.",
            instance_template="Task: {{task}}",
            step_limit=10,
            cost_limit=100.0,
        )
        result = agent.run("make add() add")
        assert result["exit_status"] == "Submitted", agent.messages[-3:]
        assert result["submission"] == "def add(a, b):\n    return a + b\n"
        observations = [m["content"] for m in agent.messages if m["role"] == "user"][1:]
        assert "return a - b" in observations[0]
        assert "ok" in observations[2]
        assert (tmp_path / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
