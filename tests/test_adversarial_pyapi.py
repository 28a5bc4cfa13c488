"""Hostile numbers and runaway nesting through the public Python API.

Every public function or method of ``agent_runtime`` that takes a number gets NaN, ±inf, 1e300,
-1 and 0: each either succeeds or raises a plain ``Exception`` subclass naming the parameter —
never pyo3's ``PanicException`` (a ``BaseException`` that ``except Exception`` misses).
The list of numeric parameters is discovered from the signatures (the ``_native.pyi`` stub for
native functions), so a new one fails the coverage test until a case is added here.
"""

import ast
import asyncio
import inspect
import math
import os
import threading
from typing import Any, Callable, Dict, List, Set, Tuple

import agent_runtime
import agent_runtime.grpc

try:
    import agent_runtime.swerex as swerex_mod
except ImportError:  # swe-rex needs Python 3.10+; its parameters are then not part of the API
    swerex_mod = None
import pytest
from agent_runtime import Registry, ToolError
from servers import ServerProcess

HOSTILE = [math.nan, math.inf, -math.inf, 1e300, -1, 0]
HOSTILE_IDS = ["nan", "inf", "-inf", "1e300", "-1", "0"]


# ---------------------------------------------------------------- discovering numeric parameters


def _stub_annotations() -> Dict[str, Dict[str, str]]:
    """Parameter annotations of the native module's functions and methods, from its stub."""
    path = os.path.join(os.path.dirname(agent_runtime.__file__), "_native.pyi")
    with open(path) as f:
        source = f.read()
    tree = ast.parse(source)
    out: Dict[str, Dict[str, str]] = {}

    def record(prefix: str, fn: ast.FunctionDef) -> None:
        args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
        out[prefix + fn.name] = {a.arg: ast.get_source_segment(source, a.annotation) or "" for a in args if a.annotation is not None}

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            record("", node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    record(node.name + ".", item)
    return out


def _is_numeric(annotation: str) -> bool:
    # `Callable[[float, ...], Any]` (a progress callback) takes numbers but is not one.
    if "Callable" in annotation:
        return False
    words = set(annotation.replace("[", " ").replace("]", " ").replace("|", " ").replace(",", " ").split())
    return bool(words & {"int", "float", "Optional[int", "Optional[float"}) or annotation in ("int", "float")


def _public_callables() -> List[Tuple[str, Any]]:
    found: List[Tuple[str, Any]] = []
    for name in agent_runtime.__all__:
        obj = getattr(agent_runtime, name)
        if isinstance(obj, type):
            for mname, m in vars(obj).items():
                if not mname.startswith("_") and callable(m):
                    found.append((f"{name}.{mname}", m))
            for base in obj.__mro__[1:]:
                if base.__module__.startswith("agent_runtime"):
                    for mname, m in vars(base).items():
                        if not mname.startswith("_") and callable(m):
                            found.append((f"{name}.{mname}", m))
        elif callable(obj):
            found.append((name, obj))
    for mod in (agent_runtime.grpc, swerex_mod):
        if mod is None:
            continue
        short = mod.__name__.split(".")[-1]
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            found.append((f"{short}.{name}", obj))
            if isinstance(obj, type):
                for mname, m in vars(obj).items():
                    if not mname.startswith("_") and callable(m):
                        found.append((f"{short}.{name}.{mname}", m))
    return found


def numeric_parameters() -> Set[str]:
    """`function.parameter` for every public parameter annotated (or stubbed) as a number."""
    stubs = _stub_annotations()
    out: Set[str] = set()
    for qual, fn in _public_callables():
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        native_name = qual.split(".", 1)[-1] if qual.count(".") else qual
        owner = getattr(fn, "__self__", None)
        bound = f"{type(owner).__name__}.{getattr(fn, '__name__', '')}" if owner is not None else ""
        stub = stubs.get(qual) or stubs.get(native_name) or stubs.get(bound) or {}
        for p in sig.parameters.values():
            ann = p.annotation if p.annotation is not inspect.Parameter.empty else stub.get(p.name)
            if isinstance(ann, type):
                ann = ann.__name__
            if ann is not None and _is_numeric(str(ann)):
                out.add(f"{qual}.{p.name}")
    return out


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def reg() -> Registry:
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)
    agent_runtime.register_diagnostic_tools()  # the default registry: `call`, `spawn`

    def noop() -> int:
        return 1

    r.tool(noop, name="py.noop")
    return r


@pytest.fixture(scope="module")
def grpc_server():
    s = ServerProcess(["--import", "sample_tools", "serve", "--grpc", "127.0.0.1:0"])
    yield s
    s.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def progress_in_tool(value: float, which: str) -> Any:
    r = Registry()
    seen: List[Any] = []

    def reporter(ctx: agent_runtime.Context) -> str:
        if which == "done":
            ctx.progress(value, 10.0)
        else:
            ctx.progress(1.0, value)
        return "ok"

    r.tool(reporter, name="reporter")
    return r.call("reporter", on_progress=lambda *a: seen.append(a))


def sample_in_tool(value: Any, which: str, sync: bool) -> Any:
    """ctx.sample / ctx.sample_sync with a hostile max_tokens or temperature. A value that passes
    the checks reaches the request, which a Python caller cannot answer (NotSupported)."""
    r = Registry()
    kw: Dict[str, Any] = {"max_tokens": 5, which: value}

    def sampler_sync(ctx: agent_runtime.Context) -> Any:
        return ctx.sample_sync("hi", **kw)

    async def sampler(ctx: agent_runtime.Context) -> Any:
        return await ctx.sample("hi", **kw)

    r.tool(sampler_sync if sync else sampler, name="sampler")
    try:
        return r.call("sampler")
    except agent_runtime.NotSupported:
        return "accepted"


def register_with_timeout(value: float) -> Any:
    r = Registry()
    r.register(lambda: None, "t", timeout=value)
    return r.spec("t")


def decorator_with_timeout(value: float) -> Any:
    r = Registry()

    def f() -> None:
        return None

    r.tool(f, name="t", timeout=value)
    return r.spec("t")


def module_decorator_with_timeout(value: float) -> Any:
    def f() -> None:
        return None

    try:
        agent_runtime.tool(f, name="adversarial_pyapi.decorated", timeout=value, replace=True)
    finally:
        agent_runtime.default_registry().unregister("adversarial_pyapi.decorated")


def register_isolated_with_timeout(value: float) -> Any:
    r = Registry()
    # The spec is checked before any worker is involved; a valid one is removed at once.
    r.register_isolated("sample_tools", "add", "iso", timeout=value)
    r.unregister("iso")


def task_result(reg: Registry, value: float) -> Any:
    t = reg.spawn("diag.noop")
    t.result(timeout=60)
    return t.result(timeout=value)


def configure(param: str) -> Callable[[Any], Any]:
    def go(value: Any) -> Any:
        # Arguments that would start or size a real pool stay small; the value under test is
        # checked before anything starts.
        kwargs: Dict[str, Any] = {param: value}
        if param != "min_workers":
            kwargs["min_workers"] = 0
        try:
            agent_runtime.configure_isolation(**kwargs)
        finally:
            agent_runtime.configure_isolation(min_workers=0)

    return go


def grpc_client_call(server: ServerProcess, value: float) -> Any:
    with agent_runtime.grpc.Client(server.addr, timeout=value) as c:
        assert c.run_tool("add", {"a": 1, "b": 2}) == 3


def grpc_client_retries(server: ServerProcess, value: Any) -> Any:
    with agent_runtime.grpc.Client([server.addr], retries=value) as c:
        assert c.run_tool("add", {"a": 1, "b": 2}) == 3


def swerex_runtime(value: float) -> Any:
    rt = swerex_mod.RustRuntime(interrupt_timeout=value)
    return run(rt.close())


def swerex_is_alive(value: float) -> Any:
    return run(swerex_mod.RustRuntime().is_alive(timeout=value))


def swerex_deployment_is_alive(value: float) -> Any:
    return run(swerex_mod.RustDeployment().is_alive(timeout=value))


def cases(reg: Registry, grpc_server: ServerProcess) -> Dict[str, Callable[[Any], Any]]:
    c: Dict[str, Callable[[Any], Any]] = {
        "call.timeout": lambda v: agent_runtime.call("diag.noop", timeout=v),
        "call_async.timeout": lambda v: run(agent_runtime.call_async("diag.noop", timeout=v)),
        "spawn.timeout": lambda v: agent_runtime.spawn("diag.noop", timeout=v).result(timeout=60),
        "shutdown.timeout": lambda v: agent_runtime.shutdown(v),
        "unsubscribe.id": lambda v: agent_runtime.unsubscribe(v),
        "tool.timeout": module_decorator_with_timeout,
        "Registry.call.timeout": lambda v: reg.call("py.noop", timeout=v),
        "Registry.call_async.timeout": lambda v: run(reg.call_async("py.noop", timeout=v)),
        "Registry.spawn.timeout": lambda v: reg.spawn("py.noop", timeout=v).result(timeout=60),
        "Registry.tool.timeout": decorator_with_timeout,
        "Registry.register.timeout": register_with_timeout,
        "Registry.register_isolated.timeout": register_isolated_with_timeout,
        "Task.result.timeout": lambda v: task_result(reg, v),
        "Context.progress.done": lambda v: progress_in_tool(v, "done"),
        "Context.sample.max_tokens": lambda v: sample_in_tool(v, "max_tokens", False),
        "Context.sample.temperature": lambda v: sample_in_tool(v, "temperature", False),
        "Context.sample_sync.max_tokens": lambda v: sample_in_tool(v, "max_tokens", True),
        "Context.sample_sync.temperature": lambda v: sample_in_tool(v, "temperature", True),
        "Context.progress.total": lambda v: progress_in_tool(v, "total"),
        "grpc.Client.timeout": lambda v: grpc_client_call(grpc_server, v),
        "grpc.Client.retries": lambda v: grpc_client_retries(grpc_server, v),
    }
    if swerex_mod is not None:
        c["swerex.RustRuntime.interrupt_timeout"] = swerex_runtime
        c["swerex.RustRuntime.is_alive.timeout"] = swerex_is_alive
        c["swerex.RustDeployment.is_alive.timeout"] = swerex_deployment_is_alive
    for p in inspect.signature(agent_runtime.configure_isolation).parameters.values():
        if _is_numeric(str(p.annotation)):
            c[f"configure_isolation.{p.name}"] = configure(p.name)
    return c


EXPECTED_AT_LEAST = 25


def test_every_numeric_parameter_has_a_case(reg, grpc_server):
    found = numeric_parameters()
    covered = set(cases(reg, grpc_server))
    assert len(found) >= EXPECTED_AT_LEAST, sorted(found)
    assert found <= covered, f"numeric parameters without a hostile-number case: {sorted(found - covered)}"


ALL_CASES = sorted(
    {
        *numeric_parameters(),
        "Context.progress.done",
        "Context.progress.total",
        "unsubscribe.id",
    }
)


@pytest.mark.parametrize("value", HOSTILE, ids=HOSTILE_IDS)
@pytest.mark.parametrize("case", ALL_CASES)
def test_hostile_number(reg, grpc_server, case, value):
    fn = cases(reg, grpc_server)[case]
    param = case.rsplit(".", 1)[-1]
    try:
        fn(value)
    except Exception as e:  # noqa: BLE001 - any plain exception is acceptable; its text is checked
        # pyo3 names a parameter it could not convert in a note ("while processing 'id'").
        text = " ".join([str(e), *getattr(e, "__notes__", [])])
        assert param in text, f"{case}({value!r}) raised {type(e).__name__} not naming {param!r}: {text}"
    except BaseException as e:  # noqa: BLE001 - a PanicException escaping `except Exception`: a bug
        pytest.fail(f"{case}({value!r}) raised {type(e).__module__}.{type(e).__name__}: {e}")


def test_non_finite_progress_is_refused_clearly():
    with pytest.raises(ValueError, match="progress done must be a finite number, got NaN"):
        progress_in_tool(math.nan, "done")
    with pytest.raises(ValueError, match="progress total must be a finite number, got inf"):
        progress_in_tool(math.inf, "total")
    assert progress_in_tool(3.0, "done") == "ok"


def test_huge_timeouts_mean_forever(reg):
    # Clamped, not refused: a call with a 1e300 s or infinite timeout just runs.
    assert reg.call("diag.add", {"a": 1, "b": 2}, timeout=1e300) == 3
    assert reg.call("py.noop", timeout=math.inf) == 1
    assert reg.spawn("diag.add", {"a": 2, "b": 2}, timeout=1e300).result(timeout=math.inf) == 4


def test_nan_timeouts_name_the_parameter(reg):
    for bad in (math.nan, -1.0, 0.0):
        with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
            reg.call("diag.noop", timeout=bad)
    with pytest.raises(ValueError, match="timeout must be a non-negative number of seconds, got NaN"):
        agent_runtime.shutdown(math.nan)


# ---------------------------------------------------------------- nesting depth


def test_runaway_nesting_fails_fast_and_leaves_the_pool_usable():
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)
    depth_seen: List[int] = []

    def recurse(n: int) -> int:
        depth_seen.append(n)
        return r.call("diag.call", {"name": "recurse", "args": {"n": n + 1}})

    r.tool(recurse, name="recurse")
    with pytest.raises(ToolError, match="call depth limit 64 exceeded") as exc:
        r.call("recurse", {"n": 0}, timeout=600)
    assert "diag.call" in str(exc.value)
    # Each Python → diag.call → Python round trip is two nested calls.
    assert 30 <= max(depth_seen) <= 40, max(depth_seen)

    # Afterwards sync Python tools called from Rust (blocking pool threads) still run: many
    # at once, through diag.call, all complete.
    def square(x: int) -> int:
        return x * x

    r.tool(square, name="square")
    results: List[Any] = [None] * 64

    def worker(i: int) -> None:
        results[i] = r.call("diag.call", {"name": "square", "args": {"x": i}}, timeout=120)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [i * i for i in range(64)]


def test_deep_recursion_of_600_hops_is_refused_not_exhausting_threads():
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)

    def hop(n: int) -> int:
        if n >= 600:
            return n
        return r.call("diag.call", {"name": "hop", "args": {"n": n + 1}})

    r.tool(hop, name="hop")
    with pytest.raises(ToolError, match="call depth limit"):
        r.call("hop", {"n": 0}, timeout=600)
    # Spawned from Rust's point of view (a task), the limit holds as well.
    t = r.spawn("diag.call", {"name": "hop", "args": {"n": 0}})
    with pytest.raises(ToolError, match="call depth limit"):
        t.result(timeout=600)
    assert r.call("diag.call", {"name": "hop", "args": {"n": 599}}, timeout=120) == 600


def test_shallow_nesting_is_unaffected():
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)

    def hop(n: int) -> int:
        if n >= 20:
            return n
        return r.call("diag.call", {"name": "hop", "args": {"n": n + 1}})

    r.tool(hop, name="hop")
    assert r.call("hop", {"n": 0}, timeout=600) == 20


def test_async_recursion_is_limited_too():
    # A thread-local cannot follow a coroutine: the depth rides in the task's contextvars.
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)
    seen: List[int] = []

    async def ahop(n: int) -> int:
        seen.append(n)
        return await r.call_async("diag.call", {"name": "ahop", "args": {"n": n + 1}})

    r.tool(ahop, name="ahop")

    async def main() -> None:
        with pytest.raises(ToolError, match="call depth limit 64 exceeded"):
            await r.call_async("ahop", {"n": 0}, timeout=600)

    run(main())
    assert 30 <= max(seen) <= 40, max(seen)
    # From a sync caller (the tool runs on the runtime's loop) as well.
    seen.clear()
    with pytest.raises(ToolError, match="call depth limit 64 exceeded"):
        r.call("diag.call", {"name": "ahop", "args": {"n": 0}}, timeout=600)
    assert 30 <= max(seen) <= 40, max(seen)


def test_huge_work_counts_obey_timeouts(reg):
    # diag.spin with 2**64 - 1 steps would hold its thread forever; it checks for cancellation.
    with pytest.raises(agent_runtime.ToolTimeout):
        reg.call("diag.spin", {"iterations": 2**64 - 1}, timeout=0.2)
    assert isinstance(reg.call("diag.spin", {"iterations": 10}), int)
