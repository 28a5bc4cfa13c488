"""`agent-runtime serve --swerex`: SWE-ReX's remote protocol served from Rust, driven by SWE-ReX's
stock `RemoteRuntime` / `RemoteDeployment` (unchanged), plus raw HTTP for the wire details."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from typing import Tuple

import pytest

if sys.version_info < (3, 10):
    pytest.skip("swe-rex needs Python 3.10+", allow_module_level=True)
swerex = pytest.importorskip("swerex", reason="swe-rex is not installed (pip install swe-rex)")

import aiohttp
from servers import ServerProcess, server_env
from swerex.deployment.remote import RemoteDeployment
from swerex.exceptions import (
    BashIncorrectSyntaxError,
    CommandTimeoutError,
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
from swerex.runtime.remote import RemoteRuntime

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server():
    s = ServerProcess(["serve", "--swerex", "127.0.0.1:0", "--token", TOKEN])
    yield s
    assert s.stop() == 0, "".join(s.lines)


def runtime(server, token: str = TOKEN) -> RemoteRuntime:
    return RemoteRuntime(host=server.addr, auth_token=token, timeout=30)


def run(coro):
    return asyncio.run(coro)


def post(server, path: str, body, *, headers=None, token: str = TOKEN, raw: bytes | None = None):
    """POST JSON; returns (status, parsed body)."""
    h = {"Content-Type": "application/json", "X-API-Key": token, **(headers or {})}
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(f"{server.addr}/{path}", data=data, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_root_and_is_alive(server):
    with urllib.request.urlopen(
        urllib.request.Request(f"{server.addr}/", headers={"X-API-Key": TOKEN}), timeout=10
    ) as r:
        assert json.loads(r.read()) == {"message": "hello world"}
    alive = run(runtime(server).is_alive())
    assert alive.is_alive and alive.message == ""


def test_sessions_outputs_and_every_exception(server):
    async def body():
        rt = runtime(server)
        name = f"s-{uuid.uuid4().hex[:8]}"
        out = await rt.create_session(CreateBashSessionRequest(session=name))
        assert out.session_type == "bash"
        with pytest.raises(SessionExistsError, match="already exists"):
            await rt.create_session(CreateBashSessionRequest(session=name))
        obs = await rt.run_in_session(BashAction(session=name, command="cd /tmp && echo hi"))
        assert (obs.output, obs.exit_code, obs.failure_reason) == ("hi\n", 0, "")
        obs = await rt.run_in_session(BashAction(session=name, command="pwd"))
        assert obs.output.strip() == "/tmp"  # one persistent shell
        obs = await rt.run_in_session(BashAction(session=name, command="false", check="silent"))
        assert obs.exit_code == 1
        obs = await rt.run_in_session(BashAction(session=name, command="false", check="ignore"))
        assert obs.exit_code is None
        with pytest.raises(NonZeroExitCodeError, match=r"^oops: Command 'exit_7\(\) \{ return 7; \}; exit_7' failed with exit code 7"):
            await rt.run_in_session(
                BashAction(session=name, command="exit_7() { return 7; }; exit_7", error_msg="oops")
            )
        with pytest.raises(BashIncorrectSyntaxError) as ei:
            await rt.run_in_session(BashAction(session=name, command="echo 'unterminated"))
        assert "unexpected EOF" in ei.value.extra_info["bash_stderr"]
        assert set(ei.value.extra_info) == {"bash_stdout", "bash_stderr"}
        with pytest.raises(CommandTimeoutError, match=r"timeout after 0.5 seconds while running command 'echo start; sleep 30'") as ti:
            await rt.run_in_session(BashAction(session=name, command="echo start; sleep 30", timeout=0.5))
        assert "start" in ti.value.extra_info["output"]
        obs = await rt.run_in_session(BashInterruptAction(session=name))
        assert obs.exit_code == 0
        obs = await rt.run_in_session(BashAction(session=name, command="echo after"))
        assert obs.output == "after\n"
        await rt.close_session(CloseBashSessionRequest(session=name))
        with pytest.raises(SessionDoesNotExistError, match="does not exist"):
            await rt.run_in_session(BashAction(session=name, command="echo gone"))
        with pytest.raises(SessionDoesNotExistError):
            await rt.close_session(CloseBashSessionRequest(session=name))
        with pytest.raises(SessionDoesNotExistError):
            await rt.run_in_session(BashInterruptAction(session=name))

    run(body())


def test_interactive_and_shell_exit(server):
    async def body():
        rt = runtime(server)
        name = f"i-{uuid.uuid4().hex[:8]}"
        await rt.create_session(CreateBashSessionRequest(session=name))
        obs = await rt.run_in_session(
            BashAction(session=name, command="PYTHON_BASIC_REPL=1 python3 -q", is_interactive_command=True, expect=[">>> "], timeout=20)
        )
        assert obs.expect_string == ">>> "
        obs = await rt.run_in_session(
            BashAction(session=name, command="print(6*7)", is_interactive_command=True, expect=[">>> "], timeout=20)
        )
        assert "42" in obs.output
        await rt.run_in_session(
            BashAction(session=name, command="quit()", is_interactive_quit=True, timeout=20)
        )
        obs = await rt.run_in_session(BashAction(session=name, command="echo back"))
        assert obs.output == "back\n"
        await rt.run_in_session(BashAction(session=name, command="exit 0", check="silent"))
        with pytest.raises(SessionDoesNotExistError):
            await rt.run_in_session(BashAction(session=name, command="echo gone"))

    run(body())


def test_execute(server, tmp_path):
    async def body():
        rt = runtime(server)
        r = await rt.execute(Command(command=["sh", "-c", "echo out; echo err >&2; exit 3"]))
        assert (r.stdout, r.stderr, r.exit_code) == ("out\n", "err\n", 3)
        r = await rt.execute(Command(command="echo $X; pwd", shell=True, env={"X": "y", "PATH": os.environ["PATH"]}, cwd=str(tmp_path)))
        assert r.stdout == f"y\n{tmp_path}\n"
        r = await rt.execute(Command(command="echo a; echo b >&2", shell=True, merge_output_streams=True))
        assert sorted(r.stdout.split()) == ["a", "b"] and r.stderr == ""
        with pytest.raises(NonZeroExitCodeError, match=r"^bad: Command \['false'\] failed with exit code 1"):
            await rt.execute(Command(command=["false"], check=True, error_msg="bad"))
        with pytest.raises(CommandTimeoutError, match=r"Timeout \(0.5s\) exceeded") as ti:
            await rt.execute(Command(command="echo early; sleep 30", shell=True, timeout=0.5))
        assert ti.value.extra_info["stdout"] == "early\n"
        with pytest.raises(FileNotFoundError, match=r"\[Errno 2\] No such file or directory: '/no/such/program'"):
            await rt.execute(Command(command=["/no/such/program"]))

    run(body())


def test_files_and_their_errors(server, tmp_path):
    async def body():
        rt = runtime(server)
        p = tmp_path / "deep" / "dir" / "f.txt"
        await rt.write_file(WriteFileRequest(path=str(p), content="héllo\r\nworld\n"))
        assert p.read_bytes() == "héllo\r\nworld\n".encode()
        r = await rt.read_file(ReadFileRequest(path=str(p)))
        assert r.content == "héllo\nworld\n"  # universal newlines, as Path.read_text
        (tmp_path / "bin").write_bytes(b"a\xffb")
        r = await rt.read_file(ReadFileRequest(path=str(tmp_path / "bin"), errors="replace"))
        assert r.content == "a\ufffdb"
        with pytest.raises(FileNotFoundError, match=r"\[Errno 2\] No such file or directory"):
            await rt.read_file(ReadFileRequest(path=str(tmp_path / "missing")))
        with pytest.raises(IsADirectoryError):
            await rt.read_file(ReadFileRequest(path=str(tmp_path)))

    run(body())


def test_upload_file_and_zipped_dir(server, tmp_path):
    src = tmp_path / "src"
    (src / "pkg" / "sub").mkdir(parents=True)
    (src / "pkg" / "sub" / "a.py").write_text("print('a')\n")
    (src / "top.txt").write_text("top\n")
    single = tmp_path / "single.bin"
    single.write_bytes(bytes(range(256)) * 100)

    async def body():
        rt = runtime(server)
        await rt.upload(UploadRequest(source_path=str(src), target_path=str(tmp_path / "dst" / "tree")))
        await rt.upload(UploadRequest(source_path=str(single), target_path=str(tmp_path / "dst" / "one.bin")))

    run(body())
    assert (tmp_path / "dst" / "tree" / "pkg" / "sub" / "a.py").read_text() == "print('a')\n"
    assert (tmp_path / "dst" / "tree" / "top.txt").read_text() == "top\n"
    assert (tmp_path / "dst" / "one.bin").read_bytes() == single.read_bytes()


async def _upload_zip(server, data: bytes, target: str):
    form = aiohttp.FormData()
    form.add_field("file", data, filename="x.zip", content_type="application/zip")
    form.add_field("target_path", target)
    form.add_field("unzip", "true")
    async with aiohttp.ClientSession() as s, s.post(
        f"{server.addr}/upload", data=form, headers={"X-API-Key": TOKEN}
    ) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    "entry",
    ["../escaped.txt", "a/../../escaped.txt", "/tmp/escaped-abs-{u}.txt", "symlink"],
)
def test_zip_slip_is_refused_and_writes_nothing(server, tmp_path, entry):
    target = tmp_path / "t"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok.txt", "fine")
        if entry == "symlink":
            info = zipfile.ZipInfo("link")
            info.external_attr = (0o120777 << 16)
            z.writestr(info, "/etc")
        else:
            z.writestr(entry.format(u=uuid.uuid4().hex), "evil")
    status, body = run(_upload_zip(server, buf.getvalue(), str(target)))
    assert status == 511
    exc = body["swerexception"]
    assert exc["class_path"] == "builtins.ValueError"
    assert "refusing zip entry" in exc["message"] and "outside the target" in exc["message"]
    assert not (tmp_path / "escaped.txt").exists()
    assert not (target / "ok.txt").exists()

    # Through RemoteRuntime the same refusal is a ValueError.
    async def through_client():
        rt = runtime(server)
        async with aiohttp.ClientSession() as s:
            form = aiohttp.FormData()
            form.add_field("file", buf.getvalue(), filename="x.zip")
            form.add_field("target_path", str(target))
            form.add_field("unzip", "true")
            async with s.post(f"{server.addr}/upload", data=form, headers={"X-API-Key": TOKEN}) as r:
                await rt._handle_response_errors(r)

    with pytest.raises(ValueError, match="refusing zip entry"):
        run(through_client())


def test_auth(server):
    alive = run(runtime(server, token="wrong").is_alive())
    assert not alive.is_alive and "401" in alive.message and "Invalid API Key" in alive.message
    with pytest.raises(aiohttp.ClientResponseError) as ei:
        run(runtime(server, token="wrong").execute(Command(command=["true"])))
    assert ei.value.status == 401
    status, body = post(server, "execute", {"command": ["true"]}, token="")
    assert (status, body) == (401, {"detail": "Invalid API Key"})
    req = urllib.request.Request(f"{server.addr}/is_alive", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["is_alive"] is True


def test_request_id_retry_returns_the_stored_response(server, tmp_path):
    f = tmp_path / "count"
    cmd = {"command": f"echo x >> {f}; wc -l < {f}", "shell": True}
    rid = str(uuid.uuid4())
    first = post(server, "execute", cmd, headers={"X-Request-ID": rid})
    again = post(server, "execute", cmd, headers={"X-Request-ID": rid})
    assert first == again and first[0] == 200
    assert f.read_text() == "x\n"  # ran once
    other = post(server, "execute", cmd, headers={"X-Request-ID": str(uuid.uuid4())})
    assert other[1]["stdout"].strip() == "2"
    # An error response is replayed too (511 with the same exception).
    rid = str(uuid.uuid4())
    e1 = post(server, "execute", {"command": f"echo y >> {f}; false", "shell": True, "check": True}, headers={"X-Request-ID": rid})
    e2 = post(server, "execute", {"command": f"echo y >> {f}; false", "shell": True, "check": True}, headers={"X-Request-ID": rid})
    assert e1 == e2 and e1[0] == 511
    assert f.read_text() == "x\nx\ny\n"


def test_concurrent_retries_run_once(server, tmp_path):
    f = tmp_path / "once"
    cmd = {"command": f"sleep 0.3; echo x >> {f}", "shell": True}
    rid = str(uuid.uuid4())

    async def body():
        async with aiohttp.ClientSession() as s:
            async def one():
                async with s.post(f"{server.addr}/execute", json=cmd, headers={"X-API-Key": TOKEN, "X-Request-ID": rid}) as r:
                    return r.status, await r.json()

            return await asyncio.gather(*(one() for _ in range(5)))

    results = run(body())
    assert all(r == results[0] for r in results) and results[0][0] == 200
    assert f.read_text() == "x\n"


def test_invalid_bodies_are_422_with_detail(server):
    status, body = post(server, "run_in_session", {"session": "x"})
    assert status == 422
    assert body["detail"][0]["loc"] == ["body", "bash", "command"]
    assert body["detail"][0]["type"] == "missing"
    status, body = post(server, "execute", {"command": 5})
    assert status == 422 and body["detail"][0]["loc"][:2] == ["body", "command"]
    status, body = post(server, "run_in_session", {"action_type": "nope"})
    assert status == 422 and body["detail"][0]["type"] == "union_tag_invalid"
    status, body = post(server, "write_file", None, raw=b"{not json")
    assert status == 422 and body["detail"][0]["type"] == "json_invalid"
    status, body = post(server, "create_session", {"session_type": "python"})
    assert status == 422
    status, body = post(server, "nowhere", {})
    assert (status, body) == (404, {"detail": "Not Found"})


def test_ten_megabytes_of_output(server):
    async def body():
        rt = runtime(server)
        name = f"big-{uuid.uuid4().hex[:8]}"
        await rt.create_session(CreateBashSessionRequest(session=name))
        obs = await rt.run_in_session(BashAction(session=name, command="head -c 10000000 /dev/zero | tr '\\0' a; echo", timeout=120))
        await rt.close_session(CloseBashSessionRequest(session=name))
        return obs.output

    out = run(body())
    assert len(out) == 10_000_001 and out.count("a") == 10_000_000


def test_concurrent_sessions_from_several_clients(server):
    async def client(i: int):
        rt = runtime(server)
        name = f"c{i}-{uuid.uuid4().hex[:6]}"
        await rt.create_session(CreateBashSessionRequest(session=name))
        await rt.run_in_session(BashAction(session=name, command=f"N={i}"))
        outs = []
        for j in range(15):
            obs = await rt.run_in_session(BashAction(session=name, command=f"echo $N-{j}"))
            outs.append(obs.output)
        await rt.close_session(CloseBashSessionRequest(session=name))
        return i, outs

    async def body():
        return await asyncio.gather(*(client(i) for i in range(8)))

    for i, outs in run(body()):
        assert outs == [f"{i}-{j}\n" for j in range(15)]


def test_close_ends_every_session():
    s = ServerProcess(["serve", "--swerex", "127.0.0.1:0"])
    try:
        async def body():
            rt = RemoteRuntime(host=s.addr, auth_token="", timeout=30)  # no token configured: no auth
            await rt.create_session(CreateBashSessionRequest(session="a"))
            await rt.create_session(CreateBashSessionRequest(session="b"))
            await rt.close()
            for name in ("a", "b"):
                with pytest.raises(SessionDoesNotExistError):
                    await rt.run_in_session(BashAction(session=name, command="true"))

        run(body())
    finally:
        assert s.stop() == 0


def test_remote_deployment(server):
    host, port = server.addr.rsplit(":", 1)

    async def body():
        d = RemoteDeployment(host=host, port=int(port), auth_token=TOKEN)
        await d.start()
        rt = d.runtime
        await rt.create_session(CreateBashSessionRequest(session="dep"))
        obs = await rt.run_in_session(BashAction(session="dep", command="echo via deployment"))
        assert obs.output == "via deployment\n"
        r = await rt.execute(Command(command=["echo", "x"]))
        assert r.stdout == "x\n"
        await rt.close_session(CloseBashSessionRequest(session="dep"))
        await d.stop()

    run(body())


def test_exposure_and_body_limit():
    env = server_env()
    cmd = [sys.executable, "-m", "agent_runtime", "serve", "--swerex", "0.0.0.0:0"]
    r = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--allow-remote" in r.stderr
    r = subprocess.run([*cmd, "--allow-remote"], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "token" in r.stderr
    s = ServerProcess(["serve", "--swerex", "127.0.0.1:0", "--swerex-max-body-bytes", "1000"])
    try:
        status, body = post(s, "write_file", {"path": "/tmp/x", "content": "a" * 5000})
        assert status == 413 and "1000 bytes" in body["detail"]
    finally:
        assert s.stop() == 0


def test_console_script_speaks_swerex_remote_flags(tmp_path, capsys):
    from agent_runtime.swerex_remote import build_argv, main, parser

    main(["--version"])
    assert capsys.readouterr().out.strip()
    with pytest.raises(SystemExit) as ei:
        main(["--port", "70000"])
    assert ei.value.code == 2

    assert build_argv(parser().parse_args(["--auth-token", "t"])) == [
        "agent-runtime", "serve", "--swerex", "0.0.0.0:8000", "--allow-remote", "--token", "t",
    ]
    assert build_argv(parser().parse_args(["--host", "::1", "--port", "9"])) == [
        "agent-runtime", "serve", "--swerex", "[::1]:9",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent_runtime.swerex_remote", "--host", "127.0.0.1", "--port", "0", "--auth-token", "tok"],
        env=server_env(), stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        line = ""
        deadline = time.monotonic() + 30
        while "listening on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
        addr = line.rsplit(" ", 1)[-1].strip()
        alive = run(RemoteRuntime(host=addr, auth_token="tok").is_alive())
        assert alive.is_alive
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def _get(url: str) -> Tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_probes_need_no_token_and_drain_finishes_a_running_command():
    s = ServerProcess(["serve", "--swerex", "127.0.0.1:0", "--token", TOKEN, "--drain-grace", "2"])
    try:
        assert _get(s.addr + "/healthz") == (200, "ok\n")
        assert _get(s.addr + "/readyz") == (200, "ready\n")
        # The protocol's own endpoints still want the key.
        assert _get(s.addr + "/is_alive")[0] == 401
        rt = runtime(s)
        run(rt.create_session(CreateBashSessionRequest(session="d")))
        result: dict = {}

        def slow() -> None:
            out = run(rt.run_in_session(BashAction(session="d", command="sleep 1.5; echo done", timeout=30)))
            result["out"] = out.output.strip()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _get(s.addr + "/readyz")[0] != 503:
            assert time.monotonic() < deadline, "readyz never turned 503"
            time.sleep(0.05)
        assert "draining" in _get(s.addr + "/readyz")[1]
        assert _get(s.addr + "/healthz")[0] == 200
        t.join(20)
        assert result.get("out") == "done"
        assert s.proc.wait(20) == 0, "".join(s.lines)
    finally:
        s.stop()
