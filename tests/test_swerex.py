"""`agent_runtime.swerex.RustRuntime`: the SWE-ReX runtime on Rust shell sessions."""

from __future__ import annotations

import asyncio
import sys

import pytest

if sys.version_info < (3, 10):
    pytest.skip("swe-rex needs Python 3.10+", allow_module_level=True)
swerex = pytest.importorskip("swerex", reason="swe-rex is not installed (pip install swe-rex)")

from agent_runtime.swerex import RustDeployment, RustRuntime
from swerex.exceptions import (
    BashIncorrectSyntaxError,
    CommandTimeoutError,
    DeploymentNotStartedError,
    NonZeroExitCodeError,
    SessionDoesNotExistError,
    SessionExistsError,
)
from swerex.runtime.abstract import (
    BashAction,
    BashInterruptAction,
    CloseBashSessionRequest,
    Command,
    CreateBashSessionRequest,
    ReadFileRequest,
    UploadRequest,
    WriteFileRequest,
)
from test_shell import my_zombies, session_members


def run(coro):
    return asyncio.run(coro)


async def with_session(body, **kw):
    rt = RustRuntime()
    await rt.create_session(CreateBashSessionRequest(**kw))
    try:
        return await body(rt)
    finally:
        await rt.close()


def test_run_output_and_check_modes():
    async def body(rt):
        obs = await rt.run_in_session(BashAction(command="echo hi"))
        assert (obs.output, obs.exit_code, obs.failure_reason) == ("hi\n", 0, "")
        obs = await rt.run_in_session(BashAction(command="printf 'a \\n  '", check="silent"))
        assert (obs.output, obs.exit_code) == ("a \n  ", 0)
        obs = await rt.run_in_session(BashAction(command="echo x; false", check="silent"))
        assert (obs.output, obs.exit_code) == ("x\n", 1)
        obs = await rt.run_in_session(BashAction(command="exit_code_is() { return 3; }; exit_code_is",
                                                 check="ignore"))
        assert obs.exit_code is None
        with pytest.raises(NonZeroExitCodeError, match="myerr: Command 'false' failed with exit code 1"):
            await rt.run_in_session(BashAction(command="false", check="raise", error_msg="myerr"))
        # Multiple lines and a heredoc behave like one command.
        obs = await rt.run_in_session(BashAction(command="cat <<EOF\n1\nEOF\necho 2", check="raise"))
        assert obs.output == "1\n2\n"

    run(with_session(body))


def test_syntax_error_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"

    async def body(rt):
        with pytest.raises(BashIncorrectSyntaxError) as ei:
            await rt.run_in_session(BashAction(command=f"touch {marker}; if then fi"))
        assert "syntax error" in ei.value.extra_info["bash_stderr"]
        assert ei.value.extra_info["bash_stdout"] == ""
        assert not marker.exists()

    run(with_session(body))


def test_timeout_then_interrupt_then_next_command():
    async def body(rt):
        with pytest.raises(CommandTimeoutError) as ei:
            await rt.run_in_session(BashAction(command="echo partial; sleep 60", timeout=2))
        assert ei.value.extra_info["output"] == "partial\n"
        obs = await rt.run_in_session(BashInterruptAction())
        assert obs.exit_code == 0
        obs = await rt.run_in_session(BashAction(command="echo next", check="raise"))
        assert obs.output == "next\n"
        # A job ignoring SIGINT is escalated.
        with pytest.raises(CommandTimeoutError):
            await rt.run_in_session(BashAction(command="trap '' INT; sleep 60", timeout=0.3))
        await rt.run_in_session(BashInterruptAction(timeout=0.2))
        assert (await rt.run_in_session(BashAction(command="echo ok"))).output == "ok\n"

    run(with_session(body))


def test_huge_output():
    async def body(rt):
        obs = await rt.run_in_session(BashAction(command="seq 1 1000000", timeout=120))
        assert obs.output == "".join(f"{i}\n" for i in range(1, 1000001))

    run(with_session(body))


def test_sessions_errors_and_parallel():
    async def body():
        rt = RustRuntime()
        with pytest.raises(SessionDoesNotExistError):
            await rt.run_in_session(BashAction(command="true"))
        with pytest.raises(SessionDoesNotExistError):
            await rt.close_session(CloseBashSessionRequest())
        names = [f"s{i}" for i in range(6)]
        await asyncio.gather(*(rt.create_session(CreateBashSessionRequest(session=n)) for n in names))
        with pytest.raises(SessionExistsError):
            await rt.create_session(CreateBashSessionRequest(session="s0"))
        await asyncio.gather(*(rt.run_in_session(BashAction(session=n, command=f"X={n}")) for n in names))
        obs = await asyncio.gather(
            *(rt.run_in_session(BashAction(session=n, command="sleep 0.3; echo $X")) for n in names)
        )
        assert [o.output for o in obs] == [f"{n}\n" for n in names]
        await rt.close_session(CloseBashSessionRequest(session="s0"))
        assert rt.sessions == names[1:]
        await rt.close()
        assert rt.sessions == []

    run(body())


def test_background_jobs_and_cleanup():
    async def body():
        rt = RustRuntime()
        await rt.create_session(CreateBashSessionRequest())
        await rt.run_in_session(BashAction(command="sleep 300 &"))
        obs = await rt.run_in_session(BashAction(command="echo $$"))
        sid = int(obs.output)
        assert len(session_members(sid)) >= 2
        obs = await rt.run_in_session(BashAction(command="jobs | wc -l"))
        assert obs.output.strip() == "1"
        await rt.close()
        assert session_members(sid) == []
        assert my_zombies() == []

    run(body())


def test_startup_source_and_interactive(tmp_path):
    rc = tmp_path / "rc.sh"
    rc.write_text("export FROM_RC=yes\nPS1='changed> '\necho sourced\n")

    async def body(rt):
        obs = await rt.run_in_session(BashAction(command="echo $FROM_RC"))
        assert obs.output == "yes\n"
        obs = await rt.run_in_session(
            BashAction(command="read -p 'name? ' n; echo hi $n", is_interactive_command=True,
                       expect=[r"name\? "], timeout=10)
        )
        assert obs.expect_string == r"name\? "
        obs = await rt.run_in_session(BashAction(command="bob", is_interactive_quit=True, timeout=10))
        assert obs.output == "hi bob\n"
        assert (await rt.run_in_session(BashAction(command="echo done"))).output == "done\n"

    rt_out = {}

    async def create_and_run():
        rt = RustRuntime()
        rt_out["resp"] = await rt.create_session(CreateBashSessionRequest(startup_source=[str(rc)]))
        try:
            await body(rt)
        finally:
            await rt.close()

    run(create_and_run())
    assert rt_out["resp"].output == "sourced\n"


def test_execute():
    async def body():
        rt = RustRuntime()
        r = await rt.execute(Command(command=["sh", "-c", "echo o; echo e >&2; exit 2"]))
        assert (r.stdout, r.stderr, r.exit_code) == ("o\n", "e\n", 2)
        r = await rt.execute(Command(command="echo $A; echo b >&2", shell=True, env={"A": "1"},
                                     merge_output_streams=True))
        assert (r.stdout, r.stderr) == ("1\nb\n", "")
        r = await rt.execute(Command(command="pwd", shell=True, cwd="/"))
        assert r.stdout == "/\n"
        with pytest.raises(CommandTimeoutError):
            await rt.execute(Command(command="sleep 30", shell=True, timeout=0.2))
        with pytest.raises(NonZeroExitCodeError, match="oops"):
            await rt.execute(Command(command=["false"], check=True, error_msg="oops"))

    run(body())


def test_files_round_trip_and_upload(tmp_path):
    async def body():
        rt = RustRuntime()
        p = tmp_path / "deep" / "er" / "f.txt"
        text = "héllo\n\tüñí©ødé ✓\r\n  trailing  \n"
        await rt.write_file(WriteFileRequest(path=str(p), content=text))
        # Path.read_text semantics (as LocalRuntime): universal newlines.
        assert (await rt.read_file(ReadFileRequest(path=str(p)))).content == text.replace("\r\n", "\n")
        assert p.read_bytes() == text.encode()
        latin = tmp_path / "latin.txt"
        latin.write_bytes("café".encode("latin-1") + b"\xff")
        r = await rt.read_file(ReadFileRequest(path=str(latin), encoding="latin-1"))
        assert r.content == "café\xff"
        r = await rt.read_file(ReadFileRequest(path=str(latin), encoding="utf-8", errors="replace"))
        assert r.content == "caf\ufffd\ufffd"
        with pytest.raises(UnicodeDecodeError):
            await rt.read_file(ReadFileRequest(path=str(latin), encoding="utf-8"))
        with pytest.raises(FileNotFoundError):
            await rt.read_file(ReadFileRequest(path=str(tmp_path / "missing")))
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "a.txt").write_text("a")
        (src / "sub" / "b.bin").write_bytes(b"\x00\x01")
        await rt.upload(UploadRequest(source_path=str(src), target_path=str(tmp_path / "dst")))
        assert (tmp_path / "dst" / "a.txt").read_text() == "a"
        assert (tmp_path / "dst" / "sub" / "b.bin").read_bytes() == b"\x00\x01"
        await rt.upload(UploadRequest(source_path=str(src / "a.txt"), target_path=str(tmp_path / "n" / "c")))
        assert (tmp_path / "n" / "c").read_text() == "a"

    run(body())


def test_deployment():
    async def body():
        d = RustDeployment()
        assert not await d.is_alive()
        with pytest.raises(DeploymentNotStartedError):
            d.runtime  # noqa: B018
        await d.start()
        assert await d.is_alive()
        await d.runtime.create_session(CreateBashSessionRequest())
        obs = await d.runtime.run_in_session(BashAction(command="echo $((1+1))"))
        assert obs.output == "2\n"
        await d.stop()

    run(body())


def test_shell_exit_closes_session():
    async def body():
        rt = RustRuntime()
        await rt.create_session(CreateBashSessionRequest())
        obs = await rt.run_in_session(BashAction(command="echo bye; exit 3", check="silent"))
        assert obs.exit_code == 3 and "bye" in obs.output and obs.failure_reason == "exited"
        with pytest.raises(SessionDoesNotExistError):
            await rt.run_in_session(BashAction(command="true"))
        # The name can be used again.
        await rt.create_session(CreateBashSessionRequest())
        assert (await rt.run_in_session(BashAction(command="echo again"))).output == "again\n"
        await rt.close()

    run(body())
