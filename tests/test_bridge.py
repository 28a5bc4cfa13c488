"""The core bridge: registry from Python, Python tools from Rust, marshaling, errors, threads."""

import asyncio
import contextvars
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import agent_runtime
import pytest
import sample_tools
from agent_runtime import (
    AgentRuntimeError,
    ConversionError,
    InvalidArguments,
    RegistrationError,
    Registry,
    ToolError,
    ToolNotFound,
    _native,
    call,
    call_async,
)


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- registration


def test_decorator_registers_at_import_and_keeps_function_callable():
    names = {t["name"] for t in agent_runtime.tools()}
    assert {"add", "sample.greet", "async_add", "fail", "diag.noop"} <= names
    assert sample_tools.add(2, 3) == 5
    assert run(sample_tools.async_add(2, 3)) == 5


def test_spec_from_signature_and_docstring():
    spec = agent_runtime.default_registry().spec("add")
    assert spec["description"] == "Add two integers."
    s = spec["input_schema"]
    assert s["properties"]["a"] == {"type": "integer", "description": "First addend."}
    assert s["properties"]["b"]["default"] == 1
    assert s["required"] == ["a"]
    assert s["additionalProperties"] is False
    assert spec["output_schema"] == {"type": "integer"}
    greet = agent_runtime.default_registry().spec("sample.greet")
    assert greet["description"] == "Greet someone."
    assert greet["timeout"] == 5.0


def test_independent_registries_and_explicit_schema():
    r = Registry()
    assert len(r) == 0 and "add" not in r

    @r.tool(schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    def square(n):
        return n * n

    assert r.call("square", {"n": 7}) == 49
    assert "square" in r and "square" not in agent_runtime.default_registry()
    with pytest.raises(InvalidArguments):
        r.call("square", {"n": "7"})
    assert r.unregister("square") is True
    assert r.unregister("square") is False
    with pytest.raises(ToolNotFound):
        r.call("square", {"n": 1})


def test_duplicate_names_refused_unless_replace_or_same_function():
    r = Registry()

    def f() -> int:
        return 1

    def g() -> int:
        return 2

    r.tool(f, name="t")
    r.tool(f, name="t")  # same function again (a module reload): replaced quietly
    with pytest.raises(RegistrationError, match="already registered"):
        r.tool(g, name="t")
    r.tool(g, name="t", replace=True)
    assert r.call("t") == 2


def test_bad_registrations():
    r = Registry()
    with pytest.raises(TypeError):
        r.register(42, "x")
    with pytest.raises(RegistrationError, match="invalid input schema"):
        r.register(lambda: 1, "x", input_schema={"type": "nonsense"})
    with pytest.raises(ValueError, match="timeout"):
        r.register(lambda: 1, "x", timeout=-1.0)

    def needs_star(*args):
        return args

    with pytest.raises(TypeError):
        r.tool(needs_star)


def test_callable_objects_and_partials():
    import functools

    r = Registry()

    class Scale:
        """Scale a number."""

        def __init__(self, k: int) -> None:
            self.k = k

        def __call__(self, x: int) -> int:
            return self.k * x

    class AsyncScale:
        async def __call__(self, x: int) -> int:
            return 3 * x

    def power(base: int, exp: int) -> int:
        return base**exp

    r.tool(Scale(2), name="scale")
    r.tool(AsyncScale(), name="ascale")
    r.tool(functools.partial(power, exp=2), name="sq")
    assert r.call("scale", {"x": 4}) == 8
    assert r.call("ascale", {"x": 4}) == 12
    assert r.call("sq", {"base": 5}) == 25
    assert run(r.call_async("ascale", {"x": 2})) == 6


# ---------------------------------------------------------------- calling


def test_sync_and_async_tools_through_both_calls():
    assert call("add", {"a": 2, "b": 3}) == 5
    assert call("add", {"a": 2}) == 3
    assert call("async_add", {"a": 2, "b": 3}) == 5
    assert call("diag.add", {"a": 2, "b": 3}) == 5

    async def main():
        return (
            await call_async("add", {"a": 1, "b": 1}),
            await call_async("async_add", {"a": 1, "b": 2}),
            await call_async("diag.add", {"a": 1, "b": 3}),
            await call_async("diag.sleep", {"seconds": 0.01}),
        )

    assert run(main()) == (2, 3, 4, 0.01)


def test_rust_calls_python_tools_sync_and_async():
    # diag.call is a Rust tool that calls another tool through Registry::call.
    assert call("diag.call", {"name": "add", "args": {"a": 20, "b": 22}}) == 42
    assert call("diag.call", {"name": "async_add", "args": {"a": 1, "b": 2}}) == 3

    async def main():
        return await call_async("diag.call", {"name": "async_add", "args": {"a": 5, "b": 6}})

    assert run(main()) == 11


def test_python_to_python_passes_objects_unconverted():
    marker = object()
    big = 2**100
    assert call("identity", {"value": marker}) is marker
    assert call("identity", {"value": big}) == big
    seq = (1, 2)
    assert call("identity", {"value": seq}) is seq


def test_args_accept_mappings_and_none():
    from types import MappingProxyType

    assert call("add", MappingProxyType({"a": 1})) == 2
    assert call("noop", None) is None
    assert call("noop") is None
    with pytest.raises(TypeError, match="dict"):
        call("add", [1, 2])


def test_call_async_of_rust_tool_that_waits_can_be_cancelled():
    async def main():
        t = asyncio.ensure_future(call_async("diag.sleep", {"seconds": 5}))
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return await call_async("diag.add", {"a": 1, "b": 1})

    assert run(main()) == 2


def test_call_async_is_a_coroutine():
    import inspect

    coro = call_async("diag.sleep", {"seconds": 0.01})
    assert inspect.iscoroutine(coro)
    assert asyncio.run(coro) == 0.01
    assert asyncio.run(call_async("async_add", {"a": 1, "b": 1})) == 2


def test_ready_awaitable_is_single_use():
    async def main():
        aw = call_async("diag.noop")
        assert await aw is None
        with pytest.raises(RuntimeError, match="already awaited"):
            await aw

    run(main())


# ---------------------------------------------------------------- marshaling


def roundtrip(value, schema=None):
    return _native._roundtrip(value, schema)


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -1, 2**63 - 1, 2**64 - 1, -(2**63), 1.5, -0.0, "", "héllo ✓", [1, "a", None], {"k": [1, {"n": 2.5}]}],
)
def test_json_values_round_trip(value):
    assert roundtrip(value) == value
    assert type(roundtrip(value)) is type(value)


def test_tuples_become_lists_and_bytes_round_trip_with_schema():
    assert roundtrip((1, 2)) == [1, 2]
    raw = bytes(range(256))
    assert isinstance(roundtrip(raw), str)  # base64 on the JSON side
    schema = {"type": "string", "contentEncoding": "base64"}
    assert roundtrip(raw, schema) == raw
    assert roundtrip(bytearray(b"xy"), schema) == b"xy"
    nested = {"type": "object", "properties": {"blobs": {"type": "array", "items": schema}}}
    assert roundtrip({"blobs": [b"a", b"b"]}, nested) == {"blobs": [b"a", b"b"]}
    assert roundtrip(None, {"anyOf": [schema, {"type": "null"}]}) is None


def test_bytes_reach_python_tools_called_from_rust_as_bytes():
    # JSON side carries base64; the Python tool gets bytes back thanks to its schema.
    import base64

    out = call("diag.call", {"name": "blob", "args": {"data": base64.b64encode(b"abc").decode()}})
    assert base64.b64decode(out) == b"cba"
    assert call("blob", {"data": b"abc"}) == b"cba"


def test_annotated_types_are_rebuilt_for_json_callers():
    import base64

    args = {"data": base64.b64encode(b"xyz").decode(), "color": "blue", "point": {"x": 1, "y": 2}, "tags": {"b": 1, "a": 2}}
    got = call("diag.call", {"name": "describe", "args": args})
    assert got == {"data": "bytes", "data_len": 3, "color": "Color", "point": "Point", "point_y": 2, "tags": ["a", "b"]}


def test_big_ints_refused_clearly_when_crossing_to_json():
    with pytest.raises(ConversionError, match=r"args.a: integer .* does not fit in 64 bits"):
        call("diag.add", {"a": 2**64, "b": 1})
    with pytest.raises(ConversionError):
        roundtrip(-(2**63) - 1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_refused(bad):
    with pytest.raises(ConversionError, match="not valid JSON"):
        roundtrip({"x": [bad]})
    with pytest.raises(ConversionError, match=r"args.v\[0\]"):
        call("diag.echo", {"v": [bad]})


def test_unserializable_value_names_its_path():
    import datetime

    with pytest.raises(ConversionError) as ei:
        call("diag.echo", {"items": [1, 2, 3, {"when": datetime.datetime(2020, 1, 1)}]})
    assert str(ei.value) == "args.items[3].when: datetime is not serializable"
    assert ei.value.path == "args.items[3].when"
    assert isinstance(ei.value, TypeError) and isinstance(ei.value, AgentRuntimeError)


def test_non_str_dict_keys_refused():
    with pytest.raises(ConversionError, match=r"args.m: dict key 1 \(int\) is not a str"):
        call("diag.echo", {"m": {1: "x"}})


def test_deep_nesting_is_an_error_not_a_crash():
    deep = []
    cur = deep
    for _ in range(_native.MAX_DEPTH + 5):
        nxt = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(ConversionError, match="nesting deeper than"):
        call("diag.echo", {"v": deep})
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(ConversionError, match="nesting deeper than"):
        roundtrip(cyclic)
    ok = []
    cur = ok
    for _ in range(_native.MAX_DEPTH - 3):
        nxt = []
        cur.append(nxt)
        cur = nxt
    assert call("diag.echo", {"v": ok}) == {"v": ok}


def test_unserializable_result_of_python_tool_called_from_rust():
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)
    r.register(lambda: {"s": {1, 2}}, "sets")
    with pytest.raises(ConversionError, match=r"result.s: set is not serializable"):
        r.call("diag.call", {"name": "sets"})


# ---------------------------------------------------------------- validation and errors


def test_invalid_arguments_name_the_field():
    with pytest.raises(InvalidArguments) as ei:
        call("add", {"a": "one"})
    assert ei.value.path == "a" and ei.value.tool == "add"
    assert 'is not of type "integer"' in str(ei.value)
    with pytest.raises(InvalidArguments, match="at b"):
        call("diag.add", {"a": 1})
    with pytest.raises(InvalidArguments, match="at zzz"):
        call("add", {"a": 1, "zzz": 2})
    with pytest.raises(InvalidArguments) as ei:
        call("describe", {"data": "", "color": "green", "point": {"x": 1}, "tags": {}})
    assert ei.value.path == "color"


def test_unknown_tool_suggests_close_names():
    with pytest.raises(ToolNotFound) as ei:
        call("ad")
    assert "add" in ei.value.suggestions
    assert "did you mean 'add'" in str(ei.value)
    assert isinstance(ei.value, LookupError)
    with pytest.raises(ToolNotFound) as ei:
        call("completely-unrelated-name")
    assert ei.value.suggestions == []


def test_python_exception_comes_back_as_the_same_object():
    with pytest.raises(ValueError) as ei:
        call("fail", {"message": "direct"})
    assert ei.value is sample_tools.raised[-1]
    # Through Rust (diag.call → Python tool → error → Rust → Python caller).
    with pytest.raises(ValueError) as ei:
        call("diag.call", {"name": "fail", "args": {"message": "via rust"}})
    assert ei.value is sample_tools.raised[-1] and str(ei.value) == "via rust"
    with pytest.raises(KeyError) as ei:
        call("async_fail")
    assert ei.value is sample_tools.raised[-1]

    async def main():
        with pytest.raises(KeyError) as ei:
            await call_async("diag.call", {"name": "async_fail"})
        assert ei.value is sample_tools.raised[-1]
        with pytest.raises(ValueError):
            await call_async("fail")

    run(main())


def test_rust_errors_and_panics_are_tool_errors():
    with pytest.raises(ToolError, match="tool panicked: diag.panic was called"):
        call("diag.panic")
    with pytest.raises(ToolError, match="nope"):
        call("diag.fail", {"message": "nope"})

    async def main():
        with pytest.raises(ToolError, match="panicked"):
            await call_async("diag.panic")

    run(main())
    assert call("diag.noop") is None  # the process is fine


def test_error_hierarchy():
    for cls in (ToolNotFound, InvalidArguments, ConversionError, ToolError, agent_runtime.ToolTimeout, agent_runtime.Cancelled):
        assert issubclass(cls, AgentRuntimeError)
    assert issubclass(agent_runtime.ToolTimeout, TimeoutError)
    assert AgentRuntimeError.__module__ == "agent_runtime"


# ---------------------------------------------------------------- threads, GIL, contextvars


def test_rust_tool_releases_the_gil():
    progress = []
    t = threading.Thread(target=call, args=("diag.sleep", {"seconds": 0.3}))
    t.start()
    while t.is_alive():
        progress.append(1)
    t.join()
    # This thread kept running Python while the other waited inside the Rust tool.
    assert len(progress) > 1000


def test_cpu_bound_rust_tool_runs_in_parallel_threads():
    n = 4
    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(lambda _: call("diag.spin", {"iterations": 2_000_000}), range(n)))
    assert len(set(results)) == 1


def test_contextvars_visible_in_callbacks():
    token = sample_tools.request_id.set("req-42")
    try:
        assert call("read_context") == "req-42"
        assert call("async_read_context") == "req-42"
        assert call("diag.call", {"name": "read_context"}) == "req-42"
        assert call("diag.call", {"name": "async_read_context"}) == "req-42"
    finally:
        sample_tools.request_id.reset(token)

    async def main():
        sample_tools.request_id.set("task-7")
        return (
            await call_async("read_context"),
            await call_async("async_read_context"),
            await call_async("diag.call", {"name": "read_context"}),
            await call_async("diag.call", {"name": "async_read_context"}),
        )

    assert run(main()) == ("task-7",) * 4
    assert call("read_context") == "unset"


def test_many_threads_and_tasks_at_once():
    def worker(i):
        out = []
        for j in range(50):
            out.append(call("add", {"a": i, "b": j}) == i + j)
            out.append(call("diag.add", {"a": i, "b": j}) == i + j)
            out.append(call("async_add", {"a": i, "b": j}) == i + j)
            out.append(call("diag.call", {"name": "add", "args": {"a": i, "b": j}}) == i + j)
        return all(out)

    async def tasks():
        async def one(i):
            vals = await asyncio.gather(
                call_async("add", {"a": i, "b": 1}),
                call_async("async_add", {"a": i, "b": 2}),
                call_async("diag.add", {"a": i, "b": 3}),
                call_async("diag.call", {"name": "async_add", "args": {"a": i, "b": 4}}),
                call_async("diag.call", {"name": "add", "args": {"a": i, "b": 5}}),
            )
            return vals == [i + 1, i + 2, i + 3, i + 4, i + 5]

        return all(await asyncio.gather(*(one(i) for i in range(300))))

    with ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(worker, i) for i in range(16)]
        async_ok = run(tasks())
        assert all(f.result() for f in futs)
    assert async_ok


def test_sync_call_of_async_tool_inside_a_running_loop_uses_the_runtime_loop():
    async def main():
        # Blocking the caller's loop is the caller's choice; it must still work.
        return call("async_add", {"a": 1, "b": 1})

    assert run(main()) == 2


def test_sync_call_from_runtime_loop_is_refused_not_deadlocked():
    r = Registry()

    async def inner() -> int:
        return 1

    async def outer() -> int:
        return r.call("inner")

    r.tool(inner)
    r.tool(outer)
    with pytest.raises(RuntimeError, match="would deadlock"):
        r.call("outer")


def test_context_copy_is_per_call():
    var: contextvars.ContextVar = contextvars.ContextVar("v", default=0)
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)

    @r.tool
    def bump() -> int:
        var.set(var.get() + 1)
        return var.get()

    var.set(10)
    # Callbacks run in copies: they see the caller's value but cannot change it.
    assert [r.call("diag.call", {"name": "bump"}) for _ in range(3)] == [11, 11, 11]
    assert var.get() == 10
