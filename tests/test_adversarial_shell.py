"""Hostile inputs for the built-in shell tools (issue 13): each test is a class of bug found by
the adversarial run or by a hostile pass over `shell.run`, `shell.session.*` and RustRuntime."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import agent_runtime
import pytest
from agent_runtime import ConversionError, InvalidArguments, Registry, ToolError
from test_shell import session_members, shell_registry

WRAPPER_BITS = ("builtin", "__art", "ART", "agent-runtime-shell", "\x1e")


@pytest.fixture
def reg():
    yield from shell_registry()


def run(reg: Registry, cmd: str, **kw: Any) -> Dict[str, Any]:
    return reg.call("shell.session.run", {"command": cmd, **kw})


def assert_clean(out: str) -> None:
    for bit in WRAPPER_BITS:
        assert bit not in out, (bit, out)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_pid(path: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.01)
    raise AssertionError(f"{path} was not written")


def wait_dead(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- sessions that used to die silently -------------------------------------------------------


def test_read_waiting_on_stdin_times_out_cleanly(reg):
    reg.call("shell.session.create", {})
    r = run(reg, "echo asking; read x", timeout=1)
    assert r["status"] == "timeout" and r["interrupted"] and r["output"].startswith("asking\n")
    r = run(reg, "echo ok")
    assert (r["output"], r["exit_code"]) == ("ok\n", 0)
    # Left waiting (SWE-ReX's mode), then interrupted by hand.
    r = run(reg, "read y", timeout=0.5, interrupt_on_timeout=False)
    assert r["status"] == "timeout" and not r["interrupted"]
    i = reg.call("shell.session.interrupt", {})
    assert i["interrupted"] and i["exit_code"] is not None
    assert run(reg, "echo after")["output"] == "after\n"


def test_exec_redirecting_stdout_keeps_the_session(reg):
    reg.call("shell.session.create", {})
    assert run(reg, "exec >/dev/null", timeout=5)["status"] == "completed"
    r = run(reg, "echo hidden; (exit 3)", timeout=5)
    assert (r["output"], r["exit_code"], r["status"]) == ("", 3, "completed")
    assert run(reg, "exec >/dev/tty; echo back", timeout=5)["output"] == "back\n"
    assert run(reg, "exec 2>/dev/null; ls /nonexistent; echo x", timeout=5)["output"] == "x\n"


def test_exec_bash_is_recovered_by_the_timeout_interrupt(reg):
    reg.call("shell.session.create", {})
    r = run(reg, "exec bash --norc", timeout=1)
    assert r["status"] == "timeout" and r["interrupted"]
    r = run(reg, "echo alive; false", timeout=5)
    assert (r["output"], r["exit_code"]) == ("alive\n", 1)
    assert run(reg, "echo again", timeout=5)["output"] == "again\n"


def test_a_session_that_stops_answering_is_given_up_loudly_and_replaceable(reg):
    reg.call("shell.session.create", {"session": "s"})
    ignore = (
        "exec python3 -c 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'"
    )
    r = run(reg, ignore, session="s", timeout=1, interrupt_on_timeout=False)
    assert r["status"] == "timeout"
    with pytest.raises(ToolError, match="was closed: it did not answer"):
        reg.call("shell.session.interrupt", {"session": "s", "timeout": 0.2, "resync_timeout": 1})
    with pytest.raises(ToolError, match="create a new session"):
        run(reg, "true", session="s")
    assert "s" not in reg.call("shell.session.list")
    reg.call("shell.session.create", {"session": "s"})
    assert run(reg, "echo new", session="s")["output"] == "new\n"


# --- the hidden wrapper never shows ----------------------------------------------------------


def test_wrapper_does_not_leak_whatever_the_tty_modes(reg):
    reg.call("shell.session.create", {})
    for modes in ("sane", "echo", "raw", "-icanon echo", "-isig"):
        assert run(reg, f"stty {modes}")["status"] == "completed"
        r = run(reg, "echo x")
        assert r["output"].replace("\r", "") == "x\n", (modes, r)
    r = run(reg, "stty -isig; sleep 30", timeout=0.5)
    assert r["status"] == "timeout" and r["interrupted"]
    assert run(reg, "echo fine")["output"].replace("\r", "") == "fine\n"


def test_debug_trap_and_xtrace_do_not_show_the_wrapper(reg):
    reg.call("shell.session.create", {})
    run(reg, "trap 'echo DBG' DEBUG")
    assert run(reg, "echo one; echo two")["output"] == "DBG\none\nDBG\ntwo\n"
    r = run(reg, "false")
    assert r["exit_code"] == 1 and r["output"] == "DBG\n"
    assert run(reg, "trap - DEBUG")["output"] == "DBG\n"
    assert run(reg, "echo plain")["output"] == "plain\n"
    run(reg, "set -x")
    out = run(reg, "echo traced")["output"]
    assert_clean(out)
    assert out.endswith("echo traced\ntraced\n"), out
    run(reg, "set +x; set -v")
    out = run(reg, "echo verbose\necho two")["output"]
    assert_clean(out)
    assert "verbose\n" in out
    run(reg, "set +v")
    assert run(reg, "echo quiet")["output"] == "quiet\n"
    # The user still sees and controls their own settings.
    run(reg, "trap 'true' DEBUG; set -u")
    assert "trap -- 'true' DEBUG" in run(reg, "trap -p DEBUG")["output"]
    run(reg, "trap - DEBUG")
    assert "u" in run(reg, "echo $-")["output"]


# --- everything a session or a command started dies -----------------------------------------


SETSID_CHILD = "setsid sh -c 'echo $$ > {f}; exec sleep 300' >/dev/null 2>&1 </dev/null &"


def test_setsid_children_die_with_the_session(reg, tmp_path):
    pid = reg.call("shell.session.create", {"session": "a"})["pid"]
    f1, f2 = tmp_path / "1", tmp_path / "2"
    run(reg, SETSID_CHILD.format(f=f1), session="a")
    # Double fork: the intermediate exits, the daemon is an orphan.
    run(reg, f"setsid -f sh -c 'echo $$ > {f2}; exec sleep 300' >/dev/null 2>&1 </dev/null", session="a")
    daemons = [wait_pid(f1), wait_pid(f2)]
    assert all(alive(d) for d in daemons)
    assert not {p["pid"] for p in session_members(pid)} & set(daemons)  # they left the session
    reg.call("shell.session.close", {"session": "a"})
    assert all(wait_dead(d) for d in daemons), daemons


def test_setsid_children_die_with_a_timed_out_command(reg, tmp_path):
    f = tmp_path / "pid"
    r = reg.call(
        "shell.run",
        {"command": SETSID_CHILD.format(f=f) + " echo started; sleep 60", "timeout": 1},
    )
    assert r["timed_out"] and r["stdout"] == "started\n"
    assert wait_dead(wait_pid(f))
    # A setsid child that keeps the output pipe open (the parent already exited).
    f2 = tmp_path / "pid2"
    r = reg.call("shell.run", {"command": f"setsid sh -c 'echo $$ > {f2}; echo out; exec sleep 300' &",
                               "timeout": 1})
    assert r["timed_out"] and r["stdout"] == "out\n"
    assert wait_dead(wait_pid(f2))


def test_runtime_shutdown_kills_sessions_and_their_daemons(tmp_path):
    r = Registry()
    agent_runtime.register_builtin_tools(["shell"], registry=r)
    pid = r.call("shell.session.create", {})["pid"]
    f = tmp_path / "pid"
    r.call("shell.session.run", {"command": SETSID_CHILD.format(f=f)})
    daemon = wait_pid(f)
    agent_runtime.shutdown(5.0)
    assert wait_dead(daemon) and wait_dead(pid)
    with pytest.raises(ToolError, match="runtime shutdown"):
        r.call("shell.session.run", {"command": "true"})
    # The name can be used again on the next runtime.
    r.call("shell.session.create", {})
    assert r.call("shell.session.run", {"command": "echo up"})["output"] == "up\n"
    r.call("shell.session.close", {})


# --- shell.run semantics ---------------------------------------------------------------------


def test_run_timeout_returns_the_output_so_far(reg):
    r = reg.call("shell.run", {"command": "echo before; echo err >&2; sleep 60", "timeout": 1})
    assert (r["stdout"], r["exit_code"], r["timed_out"]) == ("before\n", None, True)
    # sh may report its killed child ("Killed") before it is killed itself.
    assert r["stderr"].startswith("err\n")
    r = reg.call("shell.run", {"command": "echo m1; echo m2 >&2; sleep 60", "timeout": 1,
                               "merge_output_streams": True})
    assert r["stdout"].startswith("m1\nm2\n") and r["timed_out"]


def test_shell_true_with_a_list_is_never_joined(reg):
    r = reg.call("shell.run", {"command": ["echo", "a;echo INJECTED"], "shell": True})
    assert "INJECTED" not in r["stdout"] and r["stdout"] == "\n"
    r = reg.call("shell.run", {"command": ["echo $0 $1", "hi", "there"], "shell": True})
    assert r["stdout"] == "hi there\n"
    r = reg.call("shell.run", {"command": ["echo", "a;b"]})
    assert r["stdout"] == "a;b\n"


@pytest.mark.skipif(sys.version_info < (3, 10), reason="swe-rex needs Python 3.10+")
def test_shell_list_matches_swerex_local_runtime():
    pytest.importorskip("swerex")
    from agent_runtime.swerex import RustRuntime
    from swerex.runtime.abstract import Command
    from swerex.runtime.local import LocalRuntime

    async def both(cmd: Any) -> List[Any]:
        out = []
        for rt in (LocalRuntime(), RustRuntime()):
            r = await rt.execute(Command(command=cmd, shell=True))
            out.append((r.stdout, r.stderr, r.exit_code))
        return out

    for cmd in (["echo $0", "hi"], ["echo", "a;echo INJECTED"], ["printf '%s|' \"$0\" \"$@\"", "x", "y z"],
                "echo plain"):
        local, rust = asyncio.run(both(cmd))
        assert rust == local, cmd


# --- bounded memory --------------------------------------------------------------------------


def test_huge_output_is_capped_and_memory_bounded(reg):
    cap = 1 << 20
    before = rss_kib()
    r = reg.call("shell.run", {"command": "head -c 100000000 /dev/zero | tr '\\0' a", "max_output": cap,
                               "timeout": 120})
    grew = rss_kib() - before
    assert r["exit_code"] == 0 and not r["timed_out"]
    assert len(r["stdout"]) < cap + 1000
    assert r["stdout"].startswith("aaaa") and r["stdout"].endswith("aaaa")
    assert f"[... {100_000_000 - cap} bytes of output omitted" in r["stdout"]
    assert grew < 50_000, f"RSS grew {grew} KiB for 100 MB of output"

    reg.call("shell.session.create", {})
    before = rss_kib()
    r = run(reg, "head -c 100000000 /dev/zero | tr '\\0' b; echo; echo end", max_output=cap, timeout=300)
    grew = rss_kib() - before
    assert r["status"] == "completed" and r["exit_code"] == 0
    assert r["output"].startswith("bbbb") and r["output"].endswith("b\nend\n")
    assert "bytes of output omitted" in r["output"] and len(r["output"]) < cap + 1000
    assert grew < 50_000, f"RSS grew {grew} KiB for 100 MB of output"
    assert run(reg, "echo next")["output"] == "next\n"


def test_yes_never_aborts_the_host(reg):
    before = rss_kib()
    # The default cap.
    r = reg.call("shell.run", {"command": "yes", "timeout": 3})
    assert r["timed_out"] and r["stdout"].startswith("y\ny\n")
    assert len(r["stdout"]) < agent_runtime_default_cap() * 1.01
    r = reg.call("shell.run", {"command": "yes", "timeout": 2, "max_output": 1 << 16})
    assert r["timed_out"] and "omitted" in r["stdout"] and len(r["stdout"]) < (1 << 16) + 1000
    reg.call("shell.session.create", {})
    r = run(reg, "yes", timeout=2, max_output=1 << 16)
    assert r["status"] == "timeout" and r["interrupted"] and "omitted" in r["output"]
    # The timeout's part and the interrupt's part are capped each.
    assert len(r["output"]) < 2 * (1 << 16) + 2000
    assert run(reg, "echo alive")["output"] == "alive\n"
    assert rss_kib() - before < 300_000


def agent_runtime_default_cap() -> int:
    """The documented default of `max_output` (from the tool's schema)."""
    r = Registry()
    agent_runtime.register_builtin_tools(["shell"], registry=r)
    return int(r.spec("shell.run")["input_schema"]["properties"]["max_output"]["default"])


# --- numbers ---------------------------------------------------------------------------------


def test_hostile_timeouts_never_panic(reg):
    reg.call("shell.session.create", {})
    calls = {
        "shell.run": lambda t: reg.call("shell.run", {"command": "echo ok", "timeout": t}),
        "shell.session.run": lambda t: run(reg, "echo ok", timeout=t, no_output_timeout=t),
        "shell.session.interrupt": lambda t: reg.call("shell.session.interrupt", {"timeout": t}),
        "shell.session.create": lambda t: reg.call(
            "shell.session.create", {"session": f"s{fastrand()}", "startup_timeout": t}
        ),
    }
    for name, call in calls.items():
        # Huge means forever (clamped), not a panic.
        r = call(1e300)
        assert "ok" in str(r) or name != "shell.run", r
        # Not JSON numbers: refused at the conversion, naming the field.
        for t in (math.inf, -math.inf, math.nan):
            with pytest.raises(ConversionError, match="timeout"):
                call(t)
        with pytest.raises(InvalidArguments, match="timeout"):
            call(-1)
    with pytest.raises(InvalidArguments, match="max_output"):
        reg.call("shell.run", {"command": "true", "max_output": 10})


def fastrand() -> int:
    return int.from_bytes(os.urandom(4), "little")


# --- hostile pass ----------------------------------------------------------------------------


def test_bad_cwd_and_env_blame_the_right_argument(reg, tmp_path):
    with pytest.raises(ToolError, match=r"cwd /no/such/dir: No such file"):
        reg.call("shell.run", {"command": ["pwd"], "cwd": "/no/such/dir"})
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ToolError, match="is not a directory"):
        reg.call("shell.run", {"command": ["pwd"], "cwd": str(f)})
    with pytest.raises(InvalidArguments, match=r"env\.A"):
        reg.call("shell.run", {"command": ["true"], "env": {"A": "x\0y"}})
    with pytest.raises(InvalidArguments, match="variable name"):
        reg.call("shell.run", {"command": ["true"], "env": {"A=B": "x"}})
    with pytest.raises(InvalidArguments, match=r"command\[1\]"):
        reg.call("shell.run", {"command": ["echo", "a\0b"]})
    with pytest.raises(ToolError, match='cannot run "no-such-program-x": No such file'):
        reg.call("shell.run", {"command": ["no-such-program-x"]})
    with pytest.raises(ToolError, match=r"cwd /no/such/dir: No such file"):
        reg.call("shell.session.create", {"cwd": "/no/such/dir"})
    with pytest.raises(InvalidArguments, match=r"env\.B"):
        reg.call("shell.session.create", {"env": {"B": "\0"}})
    assert reg.call("shell.session.list") == []


def test_odd_session_names_and_inputs(reg):
    with pytest.raises(ToolError, match="session 'nope' does not exist"):
        run(reg, "true", session="nope")
    with pytest.raises(InvalidArguments):
        reg.call("shell.session.create", {"session": "x" * 300})
    reg.call("shell.session.create", {"session": "ü \n\0"})
    assert run(reg, "echo named", session="ü \n\0")["output"] == "named\n"
    reg.call("shell.session.create", {})
    # NUL, invalid UTF-8 output, binary noise, a 1 MB command.
    run(reg, "echo 'a\0b'")
    r = run(reg, "printf 'x\\xff\\x00y\\x1b]0;title\\x07z\\n'")
    assert r["output"] == "x\\xff\x00yz\n"
    r = run(reg, "head -c 20000 /dev/urandom >/dev/null; echo done")
    assert r["output"] == "done\n"
    big = "X=" + "a" * 1_000_000 + "; echo ${#X}"
    assert run(reg, big, timeout=60)["output"] == "1000000\n"
    assert run(reg, "echo still")["output"] == "still\n"


def test_concurrent_runs_on_one_session_serialize(reg):
    reg.call("shell.session.create", {})

    async def main() -> List[Dict[str, Any]]:
        return await asyncio.gather(
            *(reg.call_async("shell.session.run", {"command": f"sleep 0.1; echo {i}"}) for i in range(6))
        )

    outs = sorted(r["output"] for r in asyncio.run(main()))
    assert outs == [f"{i}\n" for i in range(6)]


def test_close_while_running(reg):
    pid = reg.call("shell.session.create", {})["pid"]
    result: Dict[str, Any] = {}

    def runner() -> None:
        try:
            result["r"] = run(reg, "sleep 60")
        except ToolError as e:
            result["e"] = e

    t = threading.Thread(target=runner)
    t.start()
    deadline = time.monotonic() + 20
    while len(session_members(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    reg.call("shell.session.close", {})
    t.join(10)
    assert not t.is_alive()
    assert result.get("r", {}).get("status") == "interrupted" or "closed" in str(result.get("e"))
    assert session_members(pid) == []
    with pytest.raises(ToolError, match="does not exist"):
        run(reg, "true")


def test_record_separator_bytes_in_output_stream_on(reg):
    reg.call("shell.session.create", {})
    chunks: List[str] = []
    r = reg.call(
        "shell.session.run",
        {"command": "printf 'a\\036b\\n'; sleep 0.2; printf 'c\\036\\036d\\n'"},
        on_progress=lambda d, t, m: chunks.append(m),
    )
    assert r["output"] == "a\x1eb\nc\x1e\x1ed\n"
    assert "".join(chunks) == r["output"]


@pytest.mark.skipif(sys.version_info < (3, 10), reason="swe-rex needs Python 3.10+")
def test_swerex_runtime_hostile_paths():
    pytest.importorskip("swerex")
    from agent_runtime.swerex import RustRuntime
    from swerex.exceptions import CommandTimeoutError, SessionDoesNotExistError
    from swerex.runtime.abstract import BashAction, BashInterruptAction, Command, CreateBashSessionRequest

    async def body() -> None:
        rt = RustRuntime()
        with pytest.raises(CommandTimeoutError) as ei:
            await rt.execute(Command(command="echo partial; sleep 60", shell=True, timeout=1))
        assert ei.value.extra_info["stdout"] == "partial\n"
        with pytest.raises(SessionDoesNotExistError):
            await rt.run_in_session(BashAction(command="true", session="nope"))
        await rt.create_session(CreateBashSessionRequest())
        ignore = ("exec python3 -c 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'")
        with pytest.raises(CommandTimeoutError):
            await rt.run_in_session(BashAction(command=ignore, timeout=1))
        rt._interrupt_timeout = 0.1
        with pytest.raises(ToolError, match="was closed"):
            await rt.run_in_session(BashInterruptAction(timeout=0.1))
        assert rt.sessions == []
        await rt.create_session(CreateBashSessionRequest())
        obs = await rt.run_in_session(BashAction(command="echo again"))
        assert obs.output == "again\n"
        await rt.close()

    asyncio.run(body())


def test_exec_bash_without_a_timeout_is_noticed(reg):
    reg.call("shell.session.create", {})
    r = run(reg, "echo before; exec bash --norc", timeout=60)
    assert r["status"] == "completed" and r["output"].startswith("before\n")
    assert run(reg, "echo in-new-shell; false", timeout=10)["output"] == "in-new-shell\n"
    # Still a working session: state, traps and timeouts.
    run(reg, "V=7; trap 'echo DBG' DEBUG")
    assert run(reg, "echo $V")["output"] == "DBG\n7\n"
    run(reg, "trap - DEBUG")
    r = run(reg, "sleep 30", timeout=0.5)
    assert r["status"] == "timeout" and r["interrupted"]
    assert run(reg, "echo end")["output"] == "end\n"
