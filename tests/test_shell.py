"""The built-in `shell.*` tools (Rust): one-shot commands and persistent bash sessions."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import threading
import time
from typing import Any, Dict, Iterator, List

import agent_runtime
import pytest
from agent_runtime import InvalidArguments, RegistrationError, Registry, ToolError


def shell_registry() -> Iterator[Registry]:
    """A registry with the shell tools; its sessions left open are closed after."""
    r = Registry()
    agent_runtime.register_builtin_tools(["shell"], registry=r)
    yield r
    for name in r.call("shell.session.list"):
        r.call("shell.session.close", {"session": name})


@pytest.fixture
def reg():
    yield from shell_registry()


def processes() -> List[Dict[str, Any]]:
    """Every process (incl. zombies): pid, state, ppid, session id."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 1 :].split()
        out.append({"pid": int(pid), "state": fields[0], "ppid": int(fields[1]), "sid": int(fields[3])})
    return out


def session_members(sid: int) -> List[Dict[str, Any]]:
    """Processes (incl. zombies) whose session id is `sid`."""
    return [p for p in processes() if p["sid"] == sid]


def my_zombies() -> List[int]:
    """Zombie children of this process."""
    return [p["pid"] for p in processes() if p["state"] == "Z" and p["ppid"] == os.getpid()]


def test_not_registered_by_default_and_groups():
    assert "shell.run" not in agent_runtime.default_registry()
    r = Registry()
    agent_runtime.register_builtin_tools(registry=r)
    assert {"shell.run", "shell.session.create", "shell.session.run", "shell.session.interrupt",
            "shell.session.close", "shell.session.list"} <= set(r.names())
    assert "diag.echo" not in r
    agent_runtime.register_builtin_tools(["diag"], registry=r)
    assert "diag.echo" in r
    with pytest.raises(RegistrationError, match=r"unknown built-in tool group 'nope' \(valid groups: .*shell"):
        agent_runtime.register_builtin_tools(["nope"], registry=r)
    spec = r.spec("shell.session.run")
    assert spec["input_schema"]["required"] == ["command"]
    assert "status" in spec["output_schema"]["properties"]


def test_run_one_shot(reg, tmp_path):
    r = reg.call("shell.run", {"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
    assert r == {"stdout": "out\n", "stderr": "err\n", "exit_code": 3, "timed_out": False}
    r = reg.call(
        "shell.run",
        {"command": "echo $X; pwd; echo e >&2; cat", "env": {"X": "1"}, "cwd": str(tmp_path),
         "merge_output_streams": True},
    )
    assert r["stdout"] == f"1\n{tmp_path}\ne\n" and r["stderr"] == ""
    r = reg.call("shell.run", {"command": "sleep 30", "timeout": 0.2})
    assert r["timed_out"] and r["exit_code"] is None
    with pytest.raises(ToolError, match="cannot run"):
        reg.call("shell.run", {"command": ["/no/such/binary"]})
    with pytest.raises(InvalidArguments, match="command"):
        reg.call("shell.run", {"command": []})
    with pytest.raises(InvalidArguments):
        reg.call("shell.run", {"command": "true", "bogus": 1})


def test_session_basics(reg):
    out = reg.call("shell.session.create", {"session": "a"})
    assert out["session"] == "a" and out["output"] == ""

    def run(cmd: str, **kw: Any) -> Dict[str, Any]:
        return reg.call("shell.session.run", {"session": "a", "command": cmd, **kw})

    r = run("echo hi")
    assert r["output"] == "hi\n" and r["exit_code"] == 0 and r["status"] == "completed"
    assert run("printf 'x \\n\\t'")["output"] == "x \n\t"
    assert run("false")["exit_code"] == 1
    run("cd /tmp; export V=5")
    assert run("echo $PWD $V")["output"] == "/tmp 5\n"
    r = run("echo 'unterminated")
    assert r["status"] == "syntax_error" and "unexpected EOF" in r["bash_stderr"]
    assert reg.call("shell.session.list") == ["a"]
    with pytest.raises(ToolError, match="already exists"):
        reg.call("shell.session.create", {"session": "a"})
    with pytest.raises(InvalidArguments, match="expect"):
        run("true", expect=["("])
    reg.call("shell.session.close", {"session": "a"})
    with pytest.raises(ToolError, match="session 'a' does not exist"):
        run("true")


def test_timeout_interrupts_by_default(reg):
    reg.call("shell.session.create", {})
    r = reg.call("shell.session.run", {"command": "echo before; sleep 60", "timeout": 2})
    assert r["status"] == "timeout" and r["interrupted"] and r["output"].startswith("before\n")
    # SIGINT (130), or SIGTERM (143) when a loaded machine lets the escalation win.
    assert r["exit_code"] in (130, 143)
    r = reg.call("shell.session.run", {"command": "echo again"})
    assert r["output"] == "again\n"
    r = reg.call("shell.session.run", {"command": "echo x; sleep 60", "no_output_timeout": 0.3,
                                       "timeout": 60})
    assert r["status"] == "timeout" and r["no_output_timeout"]


def test_interrupt_concurrent_run(reg):
    pid = reg.call("shell.session.create", {})["pid"]
    result: Dict[str, Any] = {}

    def runner() -> None:
        result["r"] = reg.call("shell.session.run", {"command": "sleep 60"})

    t = threading.Thread(target=runner)
    t.start()
    # Once `sleep` runs, the run holds the session; the interrupt stops it wherever it is.
    deadline = time.monotonic() + 30
    while len(session_members(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    i = reg.call("shell.session.interrupt", {})
    t.join(10)
    assert not t.is_alive()
    assert result["r"]["status"] == "interrupted"
    assert i["exit_code"] in (130, 143) and i["interrupted"]
    assert reg.call("shell.session.run", {"command": "echo ok"})["output"] == "ok\n"


def test_close_leaves_no_orphans_or_zombies(reg):
    pid = reg.call("shell.session.create", {"session": "bg"})["pid"]
    reg.call("shell.session.run", {"session": "bg", "command": "sleep 300 & (sleep 301 | cat) & disown"})
    # bash, sleep 300, sleep 301, cat (bash may run `cat` in the subshell's process)
    deadline = time.monotonic() + 30
    while len(session_members(pid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(session_members(pid)) >= 4
    reg.call("shell.session.close", {"session": "bg"})
    assert session_members(pid) == []
    assert my_zombies() == []


def test_huge_output(reg):
    reg.call("shell.session.create", {})
    r = reg.call("shell.session.run", {"command": "seq 1 300000"})
    assert r["output"] == "".join(f"{i}\n" for i in range(1, 300001))


def test_many_sessions_in_parallel(reg):
    async def one(i: int) -> str:
        name = f"p{i}"
        await reg.call_async("shell.session.create", {"session": name})
        await reg.call_async("shell.session.run", {"session": name, "command": f"N={i}"})
        r = await reg.call_async("shell.session.run", {"session": name, "command": "sleep 0.3; echo $N"})
        await reg.call_async("shell.session.close", {"session": name})
        return r["output"]

    async def main() -> List[str]:
        return await asyncio.gather(*(one(i) for i in range(8)))

    assert asyncio.run(main()) == [f"{i}\n" for i in range(8)]


def test_interactive_program(reg):
    reg.call("shell.session.create", {})
    r = reg.call(
        "shell.session.run",
        {"command": f"PYTHON_BASIC_REPL=1 {shlex.quote(sys.executable)} -iqc 'import sys; sys.ps1=\"PY> \"'",
         "expect": ["PY> "], "timeout": 20},
    )
    assert r["status"] == "expect" and r["expect_string"] == "PY> "
    r = reg.call("shell.session.run", {"command": "print(6*7)", "interactive": True, "expect": ["PY> "],
                                       "timeout": 10})
    assert r["output"] == "42\n"
    r = reg.call("shell.session.run", {"command": "exit()", "interactive": True, "timeout": 10})
    assert r["status"] == "completed" and r["exit_code"] == 0
    assert reg.call("shell.session.run", {"command": "echo back"})["output"] == "back\n"


def test_shell_exit_ends_session(reg):
    reg.call("shell.session.create", {})
    r = reg.call("shell.session.run", {"command": "exit 4"})
    assert r["status"] == "exited" and r["exit_code"] == 4
    with pytest.raises(ToolError, match="has exited"):
        reg.call("shell.session.run", {"command": "true"})


def test_output_streams_as_progress(reg):
    reg.call("shell.session.create", {})
    chunks: List[str] = []
    done: List[float] = []

    def on_progress(d: float, total: Any, message: Any) -> None:
        done.append(d)
        chunks.append(message)

    r = reg.call(
        "shell.session.run",
        {"command": "for i in 1 2 3; do echo line$i; sleep 0.1; done"},
        on_progress=on_progress,
    )
    assert r["output"] == "line1\nline2\nline3\n"
    assert len(chunks) >= 3 and "".join(chunks) == "line1\nline2\nline3\n"
    assert done == sorted(done)
