"""Hostile input on gRPC, RunFunction/RunScript and the CLI (issue 13, the gRPC/CLI slice).

Each test names the class of problem it guards: dunder/imported/private callables reachable
through RunFunction, async RunFunction outliving its deadline, huge names echoed into
metadata, integers beyond 64 bits silently becoming floats, panics on numeric flags, token
answers that tell a probe which check failed, and malformed wire input."""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from servers import server_env, wait_for_file

grpc = pytest.importorskip("grpc", reason="gRPC tests need grpcio (the [test] extra)")
pytest.importorskip("grpc_tools", reason="gRPC tests need grpcio-tools to generate the client")

import agent_runtime
from test_grpc import Server, code_of, generate_client

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "grpccli-token"
AUTH = [("authorization", f"Bearer {TOKEN}")]
DENIED = grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_client(tmp_path_factory.mktemp("gen"))


@pytest.fixture(scope="module")
def server():
    s = Server(imports=["grpccli_mod"], env={"AGENT_RUNTIME_TOKEN": TOKEN})
    yield s
    assert s.stop() == 0, "".join(s.lines)


@pytest.fixture(scope="module")
def stub(pb, server):
    ch = grpc.insecure_channel(server.addr)
    yield pb[1].PythonServiceStub(ch)
    ch.close()


def run_function(pb, stub, function, args_json="[]", module="grpccli_mod", **kw):
    req = pb[0].RunFunctionRequest(module=module, function=function, args_json=args_json)
    return stub.RunFunction(req, metadata=AUTH, **kw)


def denied(pb, stub, function, args_json="[]", module="grpccli_mod"):
    with pytest.raises(grpc.RpcError) as ei:
        run_function(pb, stub, function, args_json, module=module, timeout=30)
    assert code_of(ei) == DENIED, ei.value.details()
    return ei.value.details()


# ---------------------------------------------------------------- RunFunction reach


def test_dunders_cannot_rebind_read_or_rename_the_module(pb, stub):
    before = json.loads(run_function(pb, stub, "now").result_json)
    msg = denied(pb, stub, "__setattr__", '["time", 1]')
    assert "grpccli_mod.__setattr__" in msg and "names starting with '_' are private" in msg
    assert "only public" in msg and "__all__" in msg  # the rule is stated
    assert json.loads(run_function(pb, stub, "now").result_json) >= before  # `time` untouched
    msg = denied(pb, stub, "__getattribute__", '["SECRET"]')
    assert "hunter2" not in msg
    denied(pb, stub, "__init__", '["x"]')
    assert json.loads(run_function(pb, stub, "own_name").result_json) == "grpccli_mod"
    for name in ("__dict__", "__class__", "__reduce__", "_private", "__import__", "__builtins__"):
        denied(pb, stub, name)


def test_imported_functions_classes_and_other_objects_are_refused(pb, stub, tmp_path):
    marker = tmp_path / "system-ran"
    msg = denied(pb, stub, "system", json.dumps([f"touch {marker}"]))
    assert "imported from" in msg and "export it in __all__" in msg
    assert not marker.exists()
    assert "it is a class" in denied(pb, stub, "Hidden")
    assert "not callable" in denied(pb, stub, "COUNT")
    assert "not callable" in denied(pb, stub, "SECRET")
    assert "not callable" in denied(pb, stub, "sys")  # a module object
    assert "attribute paths" in denied(pb, stub, "sys.exit", "[3]")
    assert "attribute paths" in denied(pb, stub, "time.sleep", "[0]")
    assert "empty" in denied(pb, stub, "")
    assert "identifier" in denied(pb, stub, "add()")


def test_defined_and_exported_callables_are_allowed(pb, stub):
    assert run_function(pb, stub, "add", "[2, 3]").result_json == "5"  # defined here, not in __all__
    assert json.loads(run_function(pb, stub, "exported_dumps", "[[1]]").result_json) == "[1]"  # imported, exported
    # An exported class may be called; its instance is not JSON: a conversion error, not a refusal.
    with pytest.raises(grpc.RpcError) as ei:
        run_function(pb, stub, "Exported")
    assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT and "result" in ei.value.details()
    r = run_function(pb, stub, "missing_fn")
    assert r.error.startswith("AttributeError") and "missing_fn" in r.error


def test_run_script_main_obeys_the_same_rule(pb, stub):
    req = pb[0].RunScriptRequest(script="grpccli_mod", args=[])
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunScript(req, metadata=AUTH, timeout=30)
    assert code_of(ei) == DENIED and "grpccli_mod.main" in ei.value.details()
    assert "imported from" in ei.value.details()


def test_python_api_applies_the_rule():
    agent_runtime.import_tools("grpccli_mod")
    with pytest.raises(agent_runtime.NotAllowed, match="private"):
        agent_runtime.run_function("grpccli_mod", "__setattr__", '["time", 1]')
    with pytest.raises(agent_runtime.NotAllowed, match="imported from"):
        agent_runtime.run_function("grpccli_mod", "system", '["true"]')
    with pytest.raises(agent_runtime.NotAllowed, match="imported from"):
        agent_runtime.run_script("grpccli_mod", [])
    assert agent_runtime.run_function("grpccli_mod", "add", "[1, 1]") == "2"


# ---------------------------------------------------------------- async RunFunction cancellation


def test_deadline_cancels_an_async_function(pb, stub, tmp_path):
    marker = tmp_path / "deadline.txt"
    with pytest.raises(grpc.RpcError) as ei:
        run_function(pb, stub, "slow_marker", json.dumps([str(marker), 3.0]), timeout=1.0)
    assert code_of(ei) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for_file(marker, "cancelled")
    time.sleep(2.5)  # past the sleep the coroutine would have finished
    assert "ran on" not in marker.read_text()


def test_client_cancel_cancels_an_async_function(pb, stub, tmp_path):
    marker = tmp_path / "cancel.txt"
    req = pb[0].RunFunctionRequest(module="grpccli_mod", function="slow_marker", args_json=json.dumps([str(marker), 30]))
    fut = stub.RunFunction.future(req, metadata=AUTH)
    assert wait_for_file(marker, "started")
    fut.cancel()
    assert wait_for_file(marker, "cancelled")
    assert "ran on" not in marker.read_text()


def test_many_deadlines_expiring_at_once(pb, stub, tmp_path):
    def one(i):
        marker = tmp_path / f"m{i}.txt"
        try:
            if i % 2:
                run_function(pb, stub, "slow_marker", json.dumps([str(marker), 30]), timeout=0.4)
            else:
                req = pb[0].RunToolRequest(tool_name="grpc.slow", args_json=json.dumps({"marker": str(marker)}))
                stub.RunTool(req, metadata=AUTH, timeout=0.4)
        except grpc.RpcError as e:
            return e.code(), marker
        return None, marker

    with ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, range(32)))
    assert {code for code, _ in results} == {grpc.StatusCode.DEADLINE_EXCEEDED}
    # A call whose deadline passed before its coroutine started never starts it; every one
    # that started was cancelled.
    started = [m for _, m in results if m.exists() and "started" in m.read_text()]
    assert started
    assert all(wait_for_file(m, "cancelled") for m in started)
    assert run_function(pb, stub, "add", "[1, 2]").result_json == "3"


# ---------------------------------------------------------------- huge names


def test_huge_names_fail_fast_with_small_statuses(pb, stub):
    huge = "t" * (3 * 1024 * 1024)  # under the 4 MiB message limit
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb[0].RunToolRequest(tool_name=huge, args_json="{}"), metadata=AUTH, timeout=30)
    assert code_of(ei) == grpc.StatusCode.NOT_FOUND
    assert len(ei.value.details()) < 1000 and "256-byte limit" in ei.value.details()
    for module, function in ((huge, "f"), ("grpccli_mod", huge)):
        with pytest.raises(grpc.RpcError) as ei:
            run_function(pb, stub, function, module=module, timeout=30)
        assert code_of(ei) == DENIED and len(ei.value.details()) < 1000
    # A name just over the limit is refused the same way; control characters are escaped.
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb[0].RunToolRequest(tool_name="ad\x1b[2Jd", args_json="{}"), metadata=AUTH, timeout=30)
    assert code_of(ei) == grpc.StatusCode.NOT_FOUND and "\x1b" not in ei.value.details()


def test_huge_exception_message_of_a_tool_travels_in_the_response(pb, stub):
    # The `error` field carries it (bounded by the message size limit, not the metadata one).
    r = stub.RunTool(pb[0].RunToolRequest(tool_name="fail", args_json=json.dumps({"message": "m" * 100_000})), metadata=AUTH)
    assert r.error.startswith("ValueError: mmm") and len(r.error) > 100_000


# ---------------------------------------------------------------- integers beyond 64 bits


BIG = "123456789012345678901234567890"


def test_big_integers_are_refused_naming_the_path(pb, stub):
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb[0].RunToolRequest(tool_name="grpc.echo", args_json=f'{{"value": {BIG}}}'), metadata=AUTH)
    assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT
    assert "args.value" in ei.value.details() and "64 bits" in ei.value.details() and BIG in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        run_function(pb, stub, "add", f"[1, -{BIG}]")
    assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT and "args[1]" in ei.value.details()
    # The 64-bit range and floats still cross exactly.
    for lit in ("18446744073709551615", "-9223372036854775808", "1e+30"):
        r = stub.RunTool(pb[0].RunToolRequest(tool_name="grpc.echo", args_json=f'{{"value": {lit}}}'), metadata=AUTH)
        assert json.loads(r.result_json) == json.loads(lit)


def test_big_integers_python_api_and_cli():
    with pytest.raises(agent_runtime.ConversionError, match=r"args\.a"):
        agent_runtime.run_tool("add", f'{{"a": {BIG}, "b": 1}}')
    p = cli("--import", "sample_tools", "call", "add", f'{{"a": {BIG}, "b": 1}}')
    assert p.returncode == 2 and "args.a" in p.stderr and "64 bits" in p.stderr, p.stderr


# ---------------------------------------------------------------- malformed wire input


def raw_call(server, method):
    ch = grpc.insecure_channel(server.addr)
    return ch, ch.unary_unary(f"/python.PythonService/{method}", request_serializer=lambda b: b, response_deserializer=lambda b: b)


@pytest.mark.parametrize("method", ["RunTool", "RunFunction", "RunScript"])
def test_malformed_protobuf_bodies(pb, stub, server, method):
    ch, call = raw_call(server, method)
    bodies = [
        b"\x0a\x02\xff\xfe",  # field 1: invalid UTF-8
        b"\x12\x03\xc3\x28\x41",  # field 2: invalid UTF-8
        b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # over-long varint length
        b"\x0f",  # wire type 7 does not exist
        b"\x0a\x7f" + b"a",  # length beyond the body
    ]
    for body in bodies:
        with pytest.raises(grpc.RpcError) as ei:
            call(body, metadata=AUTH, timeout=30)
        assert code_of(ei) in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT), body
    ch.close()
    assert run_function(pb, stub, "add", "[1, 2]").result_json == "3"


def test_hostile_args_json(pb, stub):
    def run_tool(args_json):
        return stub.RunTool(pb[0].RunToolRequest(tool_name="grpc.echo", args_json=args_json), metadata=AUTH, timeout=30)

    for text, why in [
        ('{"value": ' + "[" * 100_000 + "]" * 100_000 + "}", "recursion limit"),
        ("[" * 100_000, "recursion limit"),
        ('{"value": NaN}', "not valid JSON"),
        ('{"value": Infinity}', "not valid JSON"),
        ('{"value": -Infinity}', "not valid JSON"),
        ('{"value": 1e999}', "not valid JSON"),
        ('{"value": "\\ud800"}', "not valid JSON"),  # lone surrogate
    ]:
        with pytest.raises(grpc.RpcError) as ei:
            run_tool(text)
        assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT and why in ei.value.details(), (text[:40], ei.value.details())
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(grpc.RpcError) as ei:
        run_function(pb, stub, "add", deep)
    assert code_of(ei) == grpc.StatusCode.INVALID_ARGUMENT and "recursion limit" in ei.value.details()
    assert run_tool('{"value": "ok"}').result_json == '"ok"'


def test_empty_names(pb, stub):
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb[0].RunToolRequest(tool_name="", args_json="{}"), metadata=AUTH)
    assert code_of(ei) == grpc.StatusCode.NOT_FOUND
    assert "not a module name" in denied(pb, stub, "add", module="")
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunScript(pb[0].RunScriptRequest(script="", args=[]), metadata=AUTH)
    assert code_of(ei) == DENIED


def test_nul_and_odd_text_cross_intact(pb, stub):
    args = ["a\x00b", "", "é\u2028", "--x"]
    r = run_function(pb, stub, "nul_join", json.dumps(args))
    assert json.loads(r.result_json) == "|".join(args)
    r = stub.RunScript(pb[0].RunScriptRequest(script="script_mod", args=args), metadata=AUTH)
    assert (r.result, r.error) == ("main:" + "|".join(args), "")


# ---------------------------------------------------------------- tokens


def test_missing_and_wrong_tokens_get_the_same_answer(pb, server):
    ch = grpc.insecure_channel(server.addr)
    stub = pb[1].PythonServiceStub(ch)
    req = pb[0].RunToolRequest(tool_name="add", args_json='{"a": 1}')
    answers = set()
    for md in (None, [("authorization", "Bearer wrong")], [("authorization", TOKEN)], [("authorization", "Basic x")],
               [("authorization", "Bearer " + TOKEN[:-1])], [("authorization", "Bearer " + TOKEN + "x")]):  # fmt: skip
        with pytest.raises(grpc.RpcError) as ei:
            stub.RunTool(req, metadata=md, timeout=30)
        answers.add((code_of(ei), ei.value.details()))
    assert len(answers) == 1 and next(iter(answers))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert stub.RunTool(req, metadata=AUTH).result_json == "2"
    ch.close()


# ---------------------------------------------------------------- CLI numbers and output


def cli(*args, stdout=subprocess.PIPE):
    return subprocess.run(
        [sys.executable, "-m", "agent_runtime", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(),
        cwd=HERE,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("value", ["nan", "NaN", "-1", "0", "-0", "-inf", "abc", "", "1e"])
def test_cli_bad_timeouts_are_usage_errors(value):
    p = cli("--import", "sample_tools", "call", "add", '{"a": 1}', "--timeout", value)
    assert p.returncode == 2 and "panicked" not in p.stderr and "timeout" in p.stderr, p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("value", ["1e300", "inf", "1.7976931348623157e308", "0.5"])
def test_cli_huge_timeouts_mean_no_limit(value):
    p = cli("--import", "sample_tools", "call", "add", '{"a": 1}', "--timeout", value)
    assert p.returncode == 0 and p.stdout.strip() == "2" and "panicked" not in p.stderr, p.stderr


@pytest.mark.parametrize("flag", ["--max-message-size", "--mcp-max-result-bytes"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e300", "1.5", "99999999999999999999999"])
def test_cli_bad_sizes_are_usage_errors(flag, value):
    p = cli("serve", "--grpc", "127.0.0.1:0", flag, value)
    assert p.returncode == 2 and "panicked" not in p.stderr and flag in p.stderr, p.stderr


@pytest.mark.parametrize("addr", ["127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:nan", "127.0.0.1:1e300", ":1"])
def test_cli_bad_ports_are_usage_errors(addr):
    for flag in ("--grpc", "--mcp-http"):
        p = cli("serve", flag, addr)
        assert p.returncode == 2 and "panicked" not in p.stderr and "not an address" in p.stderr, p.stderr


def test_cli_closed_stdout_is_not_a_panic():
    r, w = os.pipe()
    os.close(r)
    try:
        p = cli("--import", "sample_tools", "list", stdout=w)
    finally:
        os.close(w)
    assert "panicked" not in p.stderr and p.returncode == 0, p.stderr


def test_cli_run_function_rule_and_huge_names():
    p = cli("--import", "grpccli_mod", "run-function", "grpccli_mod", "__setattr__", '["time", 1]')
    assert p.returncode == 4 and "private" in p.stderr, p.stderr
    p = cli("--import", "grpccli_mod", "run-function", "grpccli_mod", "system", '["true"]')
    assert p.returncode == 4 and "imported from" in p.stderr, p.stderr
    p = cli("--import", "grpccli_mod", "run-script", "grpccli_mod")
    assert p.returncode == 4 and "imported from" in p.stderr, p.stderr
    p = cli("--import", "sample_tools", "call", "x" * 100_000)
    assert p.returncode == 3 and len(p.stderr) < 1000, len(p.stderr)


def test_python_client_refuses_truncated_replies():
    from agent_runtime.grpc import _decode

    assert _decode(b"\x0a\x02hi\x12\x00") == {1: "hi", 2: ""}
    for bad in (b"\x0a\x05ab", b"\x09\x00\x00", b"\x0d\x00", b"\x0a\x80"):
        with pytest.raises(ValueError):
            _decode(bad)


def test_cli_non_utf8_argument_is_a_usage_error():
    arg = os.fsdecode(b"a\xffb")  # what Python makes of such bytes in argv
    p = cli("--import", "script_mod", "run-script", "script_mod", arg)
    assert p.returncode == 2 and "not valid UTF-8" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_size_limits_answer_resource_exhausted(pb, stub):
    big = "y" * (5 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as ei:
        stub.RunTool(pb[0].RunToolRequest(tool_name="grpc.echo", args_json=json.dumps({"value": big})), metadata=AUTH)
    assert code_of(ei) == grpc.StatusCode.RESOURCE_EXHAUSTED and "too large" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        run_function(pb, stub, "big", "[5000000]", timeout=60)
    assert code_of(ei) == grpc.StatusCode.RESOURCE_EXHAUSTED and "too large" in ei.value.details()
    assert json.loads(run_function(pb, stub, "big", "[3]").result_json) == "xxx"


def test_registry_name_limit_from_python():
    with pytest.raises(agent_runtime.AgentRuntimeError, match="longer than 256 bytes"):

        @agent_runtime.tool(name="n" * 257)
        def too_long() -> None:
            pass

    with pytest.raises(agent_runtime.ToolNotFound) as ei:
        agent_runtime.call("q" * (4 << 20), {})
    assert len(str(ei.value)) < 1000 and "256-byte limit" in str(ei.value)
