"""gRPC: the design note's PythonService served by `agent-runtime serve --grpc`, called with a
grpcio client generated from proto/python_service.proto."""

import importlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from servers import ServerProcess, wait_for_file

grpc = pytest.importorskip("grpc", reason="gRPC tests need grpcio (the [test] extra)")
grpc_tools = pytest.importorskip("grpc_tools", reason="gRPC tests need grpcio-tools to generate the client")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROTO_DIR = os.path.join(ROOT, "proto")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """Client code generated from the contract, exactly as a Go/Python user would."""
    return generate_client(tmp_path_factory.mktemp("gen"))


def generate_client(out):
    """(python_service_pb2, python_service_pb2_grpc) generated into directory ``out``."""
    from grpc_tools import protoc

    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", "python_service.proto"])
    assert rc == 0
    sys.path.insert(0, str(out))
    try:
        pb2 = importlib.import_module("python_service_pb2")
        pb2_grpc = importlib.import_module("python_service_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return pb2, pb2_grpc


class Server(ServerProcess):
    def __init__(self, *extra, env=None, imports=(), path=None, addr="127.0.0.1:0"):
        super().__init__(
            ["--import", "sample_tools", "--import", "rpc_tools", "--import", "script_mod",
             *(["--path", str(path)] if path else []), *(a for m in imports for a in ("--import", m)),
             "serve", "--grpc", addr, *extra],
            env=env,
        )  # fmt: skip


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    assert s.stop() == 0, "".join(s.lines)


@pytest.fixture(scope="module")
def stub(pb, server):
    ch = grpc.insecure_channel(server.addr)
    yield pb[1].PythonServiceStub(ch)
    ch.close()


def code_of(excinfo):
    return excinfo.value.code()


# ---------------------------------------------------------------- RPCs


def test_run_tool(pb, stub):
    pb2 = pb[0]
    r = stub.RunTool(pb2.RunToolRequest(tool_name="add", args_json='{"a": 40, "b": 2}'))
    assert (r.result_json, r.error) == ("42", "")
    r = stub.RunTool(pb2.RunToolRequest(tool_name="async_add", args_json='{"a": 1, "b": 2}'))
    assert r.result_json == "3"
    r = stub.RunTool(pb2.RunToolRequest(tool_name="diag.add", args_json='{"a": 1, "b": 2}'))
    assert r.result_json == "3"
    r = stub.RunTool(pb2.RunToolRequest(tool_name="diag.noop", args_json=""))
    assert r.result_json == "null"


def test_run_tool_error_mapping(pb, stub):
    pb2 = pb[0]
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb2.RunToolRequest(tool_name="ad", args_json="{}"))
    assert code_of(ei) == grpc.StatusCode.NOT_FOUND and "did you mean 'add'" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb2.RunToolRequest(tool_name="add", args_json="{not json"))
    assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT and "not valid JSON" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb2.RunToolRequest(tool_name="add", args_json='{"a": "x"}'))
    assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT and "at a" in ei.value.details()
    # Tool failures travel in the response, as the note's servicer does.
    r = stub.RunTool(pb2.RunToolRequest(tool_name="fail", args_json='{"message": "boom"}'))
    assert r.result_json == "" and r.error.startswith("ValueError: boom")
    assert "Traceback" in r.error and "raise ValueError(message)" in r.error
    r = stub.RunTool(pb2.RunToolRequest(tool_name="diag.fail", args_json='{"message": "rust says no"}'))
    assert r.error == "ToolError: diag.fail: rust says no"
    r = stub.RunTool(pb2.RunToolRequest(tool_name="diag.panic", args_json="{}"))
    assert "panicked" in r.error


def test_deadline_exceeded_cancels_the_tool(pb, stub, tmp_path):
    marker = tmp_path / "deadline.txt"
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb[0].RunToolRequest(tool_name="grpc.slow", args_json=f'{{"marker": "{marker}"}}'), timeout=0.3)
    assert code_of(ei) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for_file(marker, "cancelled")


def test_client_cancel_cancels_the_tool(pb, stub, tmp_path):
    marker = tmp_path / "cancel.txt"
    fut = stub.RunTool.future(pb[0].RunToolRequest(tool_name="grpc.slow", args_json=f'{{"marker": "{marker}"}}'))
    assert wait_for_file(marker, "started")
    fut.cancel()
    assert wait_for_file(marker, "cancelled")


def test_run_function_and_script(pb, stub):
    pb2 = pb[0]
    r = stub.RunFunction(pb2.RunFunctionRequest(module="script_mod", function="add", args_json="[2, 3]"))
    assert (r.result_json, r.error) == ("5", "")
    r = stub.RunFunction(pb2.RunFunctionRequest(module="script_mod", function="aadd", args_json="[2, 3]"))
    assert r.result_json == "5"
    r = stub.RunFunction(pb2.RunFunctionRequest(module="script_mod", function="boom", args_json="[]"))
    assert r.error.startswith("RuntimeError: script failed")
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunFunction(pb2.RunFunctionRequest(module="os", function="getcwd", args_json="[]"))
    assert code_of(ei) == grpc.StatusCode.PERMISSION_DENIED and "allowlist" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunFunction(pb2.RunFunctionRequest(module="script_mod", function="add", args_json="[1,"))
    assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT
    r = stub.RunScript(pb2.RunScriptRequest(script="script_mod", args=["a", "b"]))
    assert (r.result, r.error) == ("main:a|b", "")
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunScript(pb2.RunScriptRequest(script="subprocess", args=[]))
    assert code_of(ei) == grpc.StatusCode.PERMISSION_DENIED


def test_two_hundred_concurrent_calls(pb, stub):
    pb2 = pb[0]

    def one(i):
        if i % 3 == 0:
            r = stub.RunTool(pb2.RunToolRequest(tool_name="add", args_json=f'{{"a": {i}, "b": 1}}'))
        elif i % 3 == 1:
            r = stub.RunTool(pb2.RunToolRequest(tool_name="async_add", args_json=f'{{"a": {i}, "b": 1}}'))
        else:
            r = stub.RunTool(pb2.RunToolRequest(tool_name="diag.add", args_json=f'{{"a": {i}, "b": 1}}'))
        return r.result_json == str(i + 1) and r.error == ""

    with ThreadPoolExecutor(32) as ex:
        assert all(ex.map(one, range(200)))


def test_garbage_and_oversized_requests_are_rejected_without_harm(pb, stub, server):
    ch = grpc.insecure_channel(server.addr)
    raw = ch.unary_unary("/python.PythonService/RunTool", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as ei:
        raw(b"\xff\xff\xff\xff\x0f garbage \x00\x01")
    assert code_of(ei) in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(grpc.RpcError) as ei:
        raw(b"\x0a\x05ab")  # field 1 claims 5 bytes, 2 present
    assert code_of(ei) in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    big = "x" * (5 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb[0].RunToolRequest(tool_name="grpc.echo", args_json=f'{{"value": "{big}"}}'))
    # tonic says OUT_OF_RANGE; the server rewrites it to the spec's RESOURCE_EXHAUSTED.
    assert code_of(ei) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too large" in ei.value.details()
    ch.close()
    # Still serving.
    assert stub.RunTool(pb[0].RunToolRequest(tool_name="add", args_json='{"a": 1}')).result_json == "2"


def test_health_and_reflection(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    ch = grpc.insecure_channel(server.addr)
    h = health_pb2_grpc.HealthStub(ch)
    assert h.Check(health_pb2.HealthCheckRequest(service="python.PythonService")).status == health_pb2.HealthCheckResponse.SERVING
    # Reflection, both versions: ask to list services (ServerReflectionRequest.list_services = 7).
    for version in ("v1", "v1alpha"):
        call = ch.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        replies = list(call(iter([b"\x3a\x00"])))
        assert replies and b"python.PythonService" in replies[0] and b"grpc.health.v1.Health" in replies[0], version
    ch.close()


def test_python_client_mirrors_the_go_client(server):
    from agent_runtime import ToolError
    from agent_runtime.grpc import Client

    with Client(server.addr, timeout=10) as c:
        assert c.run_tool("add", {"a": 2, "b": 2}) == 4
        assert c.run_function("script_mod", "add", 3, 4) == 7
        assert c.run_function("script_mod", "kw", 1) == {"x": 1, "y": 1}
        assert c.run_script("script_mod", "p", "q") == "main:p|q"
        with pytest.raises(ToolError, match="ValueError: nope"):
            c.run_tool("fail", {"message": "nope"})
        with pytest.raises(grpc.RpcError) as ei:
            c.run_tool("missing.tool")
        assert code_of(ei) == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------- auth, exposure, shutdown


def test_bearer_token_auth(pb):
    s = Server(env={"AGENT_RUNTIME_TOKEN": "s3cret"})
    try:
        ch = grpc.insecure_channel(s.addr)
        stub = pb[1].PythonServiceStub(ch)
        req = pb[0].RunToolRequest(tool_name="add", args_json='{"a": 1}')
        with pytest.raises(grpc.RpcError) as ei:
            stub.RunTool(req)
        assert code_of(ei) == grpc.StatusCode.UNAUTHENTICATED and "missing" in ei.value.details()
        with pytest.raises(grpc.RpcError) as ei:
            stub.RunTool(req, metadata=[("authorization", "Bearer wrong")])
        assert code_of(ei) == grpc.StatusCode.UNAUTHENTICATED
        assert stub.RunTool(req, metadata=[("authorization", "Bearer s3cret")]).result_json == "2"
        from agent_runtime.grpc import Client

        assert Client(s.addr, token="s3cret").run_tool("add", {"a": 5}) == 6
        # Health stays reachable for probes.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        ch.close()
    finally:
        assert s.stop() == 0


def test_non_loopback_needs_flag_and_token():
    import agent_runtime

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(agent_runtime.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg_parent)
    env.pop("AGENT_RUNTIME_TOKEN", None)
    base = [sys.executable, "-m", "agent_runtime", "serve", "--grpc", "0.0.0.0:0"]
    p = subprocess.run(base, capture_output=True, text=True, env=env, timeout=30, check=False)
    assert p.returncode == 4 and "--allow-remote" in p.stderr
    p = subprocess.run([*base, "--allow-remote"], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert p.returncode == 4 and "token" in p.stderr


def test_sigterm_drains_in_flight_calls(pb):
    s = Server()
    ch = grpc.insecure_channel(s.addr)
    stub = pb[1].PythonServiceStub(ch)
    fut = stub.RunTool.future(pb[0].RunToolRequest(tool_name="diag.sleep", args_json='{"seconds": 1.0}'))
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    assert fut.result(timeout=20).result_json == "1.0"
    assert s.proc.wait(20) == 0
    ch.close()


def test_max_message_size_flag(pb):
    s = Server("--max-message-size", "2048")
    try:
        ch = grpc.insecure_channel(s.addr)
        stub = pb[1].PythonServiceStub(ch)
        ok = stub.RunTool(pb[0].RunToolRequest(tool_name="grpc.echo", args_json='{"value": "small"}'))
        assert ok.result_json == '"small"'
        with pytest.raises(grpc.RpcError) as ei:
            stub.RunTool(pb[0].RunToolRequest(tool_name="grpc.echo", args_json='{"value": "%s"}' % ("y" * 4096)))
        assert code_of(ei) == grpc.StatusCode.RESOURCE_EXHAUSTED
        ch.close()
    finally:
        assert s.stop() == 0


def test_isolated_tools(pb):
    """Tools isolated with `--isolate` (worker processes): results, exceptions, and a crash
    reported as INTERNAL with the signal while the server keeps serving."""
    pb2, pb2_grpc = pb
    server = Server("--isolate", "iso_tools")
    try:
        ch = grpc.insecure_channel(server.addr)
        stub = pb2_grpc.PythonServiceStub(ch)
        r = stub.RunTool(pb2.RunToolRequest(tool_name="iso_echo", args_json='{"value": [1, 2]}'))
        assert (r.result_json, r.error) == ("[1,2]", "")
        r = stub.RunTool(pb2.RunToolRequest(tool_name="iso_raise", args_json='{"kind": "value", "message": "nope"}'))
        assert r.error.startswith("ValueError: nope") and "raise ValueError(message)" in r.error
        with pytest.raises(grpc.RpcError) as ei:
            stub.RunTool(pb2.RunToolRequest(tool_name="iso_segfault", args_json="{}"))
        assert code_of(ei) == grpc.StatusCode.INTERNAL
        assert "killed by signal 11 (SIGSEGV)" in ei.value.details()
        r = stub.RunTool(pb2.RunToolRequest(tool_name="iso_echo", args_json='{"value": "x"}'))
        assert r.result_json == '"x"'
        ch.close()
    finally:
        assert server.stop() == 0, "".join(server.lines)
