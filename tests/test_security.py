"""Security checks in one place: exposure rules, bearer tokens, the module allowlist, size and
nesting limits. What tests/test_grpc.py and tests/test_host_cli.py already prove is referenced
here, not repeated:

* non-loopback bind without ``--allow-remote`` / without a token refused (exit 4):
  ``test_grpc.py::test_non_loopback_needs_flag_and_token``
* missing / wrong token → UNAUTHENTICATED on RunTool, right token accepted, health open:
  ``test_grpc.py::test_bearer_token_auth``; one message whichever check failed:
  ``test_adversarial_grpccli.py::test_missing_and_wrong_tokens_get_the_same_answer``
* RunFunction reaches only public functions defined in or exported by the module (no
  dunders, imported functions, classes): ``test_adversarial_grpccli.py``
* RunFunction/RunScript of ``os`` / ``subprocess`` → PERMISSION_DENIED:
  ``test_grpc.py::test_run_function_and_script``; the Python API and the CLI:
  ``test_host_cli.py::test_run_function_and_script_respect_the_allowlist``,
  ``test_host_cli.py::test_cli_run_function_and_script``
* requests over the default 4 MiB and over ``--max-message-size`` refused, server keeps
  serving: ``test_grpc.py::test_garbage_and_oversized_requests_are_rejected_without_harm``,
  ``test_grpc.py::test_max_message_size_flag``
* nesting beyond MAX_DEPTH in ``call()``: ``test_bridge.py::test_deep_nesting_is_an_error_not_a_crash``
"""

import json
import os
import subprocess
import sys

import pytest

grpc = pytest.importorskip("grpc", reason="gRPC tests need grpcio (the [test] extra)")
pytest.importorskip("grpc_tools", reason="gRPC tests need grpcio-tools to generate the client")

import agent_runtime
from test_grpc import Server, code_of, generate_client

TOKEN = "s3cret-token"
SEC_TOOLS = '''
import agent_runtime


@agent_runtime.tool(name="sec.big")
def big(n: int) -> str:
    """A string of n bytes (a small request, a large response)."""
    return "x" * n


@agent_runtime.tool(name="sec.deep")
def deep(levels: int) -> object:
    """A result nested `levels` lists deep."""
    v = []
    for _ in range(levels):
        v = [v]
    return v
'''


def _serve(*args, env_token=None):
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(agent_runtime.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg_parent)
    env.pop("AGENT_RUNTIME_TOKEN", None)
    if env_token is not None:
        env["AGENT_RUNTIME_TOKEN"] = env_token
    cmd = [sys.executable, "-m", "agent_runtime", "serve", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30, check=False)


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_client(tmp_path_factory.mktemp("gen"))


@pytest.fixture(scope="module")
def sec_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("sec")
    (d / "sec_tools.py").write_text(SEC_TOOLS)
    s = Server("--max-message-size", "65536", env={"AGENT_RUNTIME_TOKEN": TOKEN}, imports=["sec_tools"], path=d)
    yield s
    assert s.stop() == 0, "".join(s.lines)


@pytest.fixture(scope="module")
def channel(sec_server):
    ch = grpc.insecure_channel(sec_server.addr)
    yield ch
    ch.close()


AUTH = [("authorization", f"Bearer {TOKEN}")]


def run_tool(pb, channel, tool, args_json, metadata=AUTH):
    stub = pb[1].PythonServiceStub(channel)
    return stub.RunTool(pb[0].RunToolRequest(tool_name=tool, args_json=args_json), metadata=metadata, timeout=30)


# ---------------------------------------------------------------- exposure


@pytest.mark.parametrize("addr", ["[::]:0", "0.0.0.0:0", "192.0.2.1:0"])
def test_non_loopback_refused_without_allow_remote(addr):
    p = _serve("--grpc", addr, env_token=TOKEN)  # even with a token
    assert p.returncode == 4, p.stderr
    assert "non-loopback" in p.stderr and "--allow-remote" in p.stderr and addr.rsplit(":", 1)[0] in p.stderr


def test_allow_remote_with_an_empty_token_refused():
    p = _serve("--grpc", "0.0.0.0:0", "--allow-remote", "--token", "")
    assert p.returncode == 4 and "needs a bearer token" in p.stderr, p.stderr
    p = _serve("--grpc", "[::]:0", "--allow-remote", env_token="")
    assert p.returncode == 4 and "needs a bearer token" in p.stderr, p.stderr


def test_host_names_are_refused_as_addresses():
    # Only IP literals: a name could resolve to a non-loopback address behind the check's back.
    p = _serve("--grpc", "localhost:0")
    assert p.returncode != 0 and "not an address" in p.stderr, p.stderr


def test_allow_remote_with_a_token_serves_and_enforces_it(pb):
    s = Server("--allow-remote", env={"AGENT_RUNTIME_TOKEN": TOKEN}, addr="0.0.0.0:0")
    try:
        host, port = s.addr.rsplit(":", 1)
        assert host == "0.0.0.0", s.addr
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        with pytest.raises(grpc.RpcError) as ei:
            run_tool(pb, ch, "add", '{"a": 1}', metadata=None)
        assert code_of(ei) == grpc.StatusCode.UNAUTHENTICATED
        assert run_tool(pb, ch, "add", '{"a": 1}').result_json == "2"
        ch.close()
    finally:
        assert s.stop() == 0


# ---------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    "header, detail",
    [
        (None, "missing"),
        (TOKEN, "missing"),  # no "Bearer " scheme
        (f"Basic {TOKEN}", "missing"),
        ("Bearer ", "invalid"),
        ("Bearer wrong", "invalid"),
        (f"Bearer {TOKEN}x", "invalid"),
        (f"Bearer {TOKEN[:-1]}", "invalid"),
        (f"Bearer  {TOKEN}", "invalid"),
    ],
)
def test_bad_tokens_rejected_on_every_rpc(pb, channel, header, detail):
    pb2, pb2_grpc = pb
    stub = pb2_grpc.PythonServiceStub(channel)
    md = None if header is None else [("authorization", header)]
    calls = [
        lambda: stub.RunTool(pb2.RunToolRequest(tool_name="add", args_json='{"a": 1}'), metadata=md, timeout=30),
        lambda: stub.RunFunction(pb2.RunFunctionRequest(module="script_mod", function="add", args_json="[1, 2]"), metadata=md, timeout=30),
        lambda: stub.RunScript(pb2.RunScriptRequest(script="script_mod", args=[]), metadata=md, timeout=30),
    ]  # fmt: skip
    for c in calls:
        with pytest.raises(grpc.RpcError) as ei:
            c()
        assert code_of(ei) == grpc.StatusCode.UNAUTHENTICATED and detail in ei.value.details()


def test_right_token_works_on_every_rpc_and_scheme_is_case_insensitive(pb, channel):
    pb2, pb2_grpc = pb
    stub = pb2_grpc.PythonServiceStub(channel)
    for scheme in ("Bearer", "bearer"):
        md = [("authorization", f"{scheme} {TOKEN}")]
        assert stub.RunTool(pb2.RunToolRequest(tool_name="add", args_json='{"a": 1}'), metadata=md).result_json == "2"
        r = stub.RunFunction(pb2.RunFunctionRequest(module="script_mod", function="add", args_json="[1, 2]"), metadata=md)
        assert (r.result_json, r.error) == ("3", "")
        assert stub.RunScript(pb2.RunScriptRequest(script="script_mod", args=["z"]), metadata=md).result == "main:z"


def test_reflection_needs_the_token_health_does_not(channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as ei:
        list(call(iter([b"\x3a\x00"])))
    assert code_of(ei) == grpc.StatusCode.UNAUTHENTICATED
    replies = list(call(iter([b"\x3a\x00"]), metadata=AUTH))
    assert replies and b"python.PythonService" in replies[0]


# ---------------------------------------------------------------- module allowlist


@pytest.mark.parametrize(
    "module, why",
    [
        ("os", "not in the allowlist"),
        ("script_mod_evil", "not in the allowlist"),  # a name sharing the allowed one's prefix
        ("script_modx", "not in the allowlist"),
        ("script_mod.sub", "not in the allowlist"),  # an exact entry does not cover submodules
        ("", "not a module name"),
        (".script_mod", "not a module name"),  # relative import
        ("script_mod.", "not a module name"),
        ("..os", "not a module name"),
        ("os; rm -rf /", "not a module name"),
        ("script_mod/../os", "not a module name"),
        ("__import__('os')", "not a module name"),
    ],
)
def test_modules_outside_the_allowlist_refused(pb, channel, module, why):
    pb2, pb2_grpc = pb
    stub = pb2_grpc.PythonServiceStub(channel)
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunFunction(pb2.RunFunctionRequest(module=module, function="getcwd", args_json="[]"), metadata=AUTH)
    assert code_of(ei) == grpc.StatusCode.PERMISSION_DENIED and why in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunScript(pb2.RunScriptRequest(script=module, args=[]), metadata=AUTH)
    assert code_of(ei) == grpc.StatusCode.PERMISSION_DENIED and why in ei.value.details()


def test_refused_module_is_never_imported(pb, channel, sec_server, tmp_path):
    # A module with an import-time side effect, on the server's path but not allowed.
    marker = tmp_path / "imported.txt"
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "sec_side_effect.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\ndef f():\n    return 1\n")
    sys.path.insert(0, str(mod_dir))  # only matters if the server shared our path; it does not
    try:
        pb2, pb2_grpc = pb
        stub = pb2_grpc.PythonServiceStub(channel)
        with pytest.raises(grpc.RpcError) as ei:
            stub.RunFunction(pb2.RunFunctionRequest(module="sec_side_effect", function="f"), metadata=AUTH)
        assert code_of(ei) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        sys.path.remove(str(mod_dir))
    assert not marker.exists()


def test_python_api_allowlist_refusals():
    with pytest.raises(agent_runtime.NotAllowed, match="not a module name"):
        agent_runtime.run_function(".relative", "f")
    with pytest.raises(agent_runtime.NotAllowed, match="not in the allowlist"):
        agent_runtime.run_script("subprocess")


# ---------------------------------------------------------------- size and nesting limits


def test_request_over_the_limit_refused_and_server_keeps_serving(pb, channel):
    with pytest.raises(grpc.RpcError) as ei:
        run_tool(pb, channel, "grpc.echo", '{"value": "%s"}' % ("y" * 70000))
    assert code_of(ei) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert run_tool(pb, channel, "add", '{"a": 1}').result_json == "2"


def test_response_over_the_limit_refused_and_server_keeps_serving(pb, channel):
    assert run_tool(pb, channel, "sec.big", '{"n": 1000}').result_json == '"%s"' % ("x" * 1000)
    with pytest.raises(grpc.RpcError) as ei:
        run_tool(pb, channel, "sec.big", '{"n": 100000}')
    assert code_of(ei) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert run_tool(pb, channel, "add", '{"a": 1}').result_json == "2"


def test_deeply_nested_arguments_rejected_cleanly(pb, channel):
    limit = agent_runtime.MAX_DEPTH
    for tool in ("diag.echo", "grpc.echo"):
        deep = "[" * (limit + 10) + "]" * (limit + 10)
        with pytest.raises(grpc.RpcError) as ei:
            run_tool(pb, channel, tool, '{"value": ' + deep + "}")
        assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT and "recursion limit" in ei.value.details()
    # Just inside the limit still works (args object + value + nested lists).
    ok = "[" * (limit - 2) + "]" * (limit - 2)
    assert run_tool(pb, channel, "diag.echo", '{"value": ' + ok + "}").result_json == '{"value":' + ok + "}"
    # Unbalanced garbage and huge nesting attempts do not hurt the server.
    with pytest.raises(grpc.RpcError) as ei:
        run_tool(pb, channel, "diag.echo", "[" * 60000)
    assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT
    assert run_tool(pb, channel, "add", '{"a": 1}').result_json == "2"


def test_deeply_nested_result_is_a_clean_error(pb, channel):
    with pytest.raises(grpc.RpcError) as ei:
        run_tool(pb, channel, "sec.deep", json.dumps({"levels": agent_runtime.MAX_DEPTH + 20}))
    assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT and "nesting deeper than" in ei.value.details()
    assert run_tool(pb, channel, "sec.deep", '{"levels": 3}').result_json == "[[[[]]]]"
    assert run_tool(pb, channel, "add", '{"a": 1}').result_json == "2"
