"""Work that tokio threads queue straight to an asyncio loop's thread (src/python/loop_waker.rs):
completions of awaited tasks and calls, and coroutine starts on the runtime loop. Still no GIL on
a tokio thread, results and errors in order with events, fallback for loops that cannot watch a
file descriptor, no descriptor leak per loop, and shutdown with starts queued."""

import asyncio
import gc
import os
import threading
import time
from typing import Any, List

import agent_runtime
import pytest
from agent_runtime import Registry, _native


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)

    @r.tool(name="w.slow")
    async def slow(x: int) -> int:
        await asyncio.sleep(0.005)
        return x * 3

    @r.tool(name="w.fail")
    async def fail(x: int) -> int:
        await asyncio.sleep(0.001)
        raise ValueError(f"bad {x}")

    @r.tool(name="w.sync")
    def sync(x: int) -> int:
        return x + 1

    return r


def test_awaits_complete_on_the_loop_without_gil_on_tokio(reg: Registry) -> None:
    before = _native._gil_on_tokio()

    async def main() -> List[Any]:
        tasks = [reg.spawn("w.slow", {"x": i}) for i in range(200)]
        calls = [reg.call_async("diag.sleep", {"seconds": 0.002}) for _ in range(50)]
        errs = [reg.spawn("w.fail", {"x": i}) for i in range(20)]
        out = await asyncio.gather(*tasks, *calls)
        caught = await asyncio.gather(*errs, return_exceptions=True)
        return out + caught

    for _ in range(3):  # a new loop each time
        out = asyncio.run(main())
        assert out[:200] == [3 * i for i in range(200)]
        errors = out[250:]
        assert len(errors) == 20
        for i, e in enumerate(errors):
            assert isinstance(e, ValueError) and str(e) == f"bad {i}"
    assert _native._gil_on_tokio() == before


def test_rust_awaiting_python_from_tokio_starts_on_the_runtime_loop(reg: Registry) -> None:
    before = _native._gil_on_tokio()
    # diag.call runs on a tokio worker and awaits the Python tool: the start is queued
    # straight to the runtime loop's thread; many at once, from several Python threads.
    results: List[Any] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        tasks = [reg.spawn("diag.call", {"name": "w.slow", "args": {"x": k * 100 + i}}) for i in range(100)]
        out = [t.result(30) for t in tasks]
        with lock:
            results.append((k, out))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(k for k, _ in results) == [0, 1, 2, 3]
    for k, out in results:
        assert out == [3 * (k * 100 + i) for i in range(100)]
    with pytest.raises(ValueError, match="bad 7"):  # the same exception comes back
        reg.spawn("diag.call", {"name": "w.fail", "args": {"x": 7}}).result(30)
    # Sync Python tools called from tokio go to the pool (and are polled briefly).
    assert [reg.spawn("diag.call", {"name": "w.sync", "args": {"x": i}}).result(30) for i in range(50)] == [
        i + 1 for i in range(50)
    ]
    assert _native._gil_on_tokio() == before


def test_events_arrive_before_an_awaited_result(reg: Registry) -> None:
    seen: List[str] = []
    sub = _native.subscribe([], lambda e: seen.append(e["event"]) if e["tool"] == "w.slow" else None)

    async def main() -> None:
        for i in range(20):
            seen.clear()
            assert await reg.spawn("w.slow", {"x": i}) == 3 * i
            assert seen == ["tool.started", "tool.finished"]

    try:
        asyncio.run(main())
    finally:
        _native.unsubscribe(sub)


def _selector_fds(loop: asyncio.AbstractEventLoop) -> int:
    return len(loop._selector.get_map())  # type: ignore[attr-defined]


def test_one_reader_per_loop_and_no_descriptor_leak(reg: Registry) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        n0 = _selector_fds(loop)
        for i in range(20):
            assert await reg.spawn("w.slow", {"x": i}) == 3 * i
            assert await reg.call_async("diag.sleep", {"seconds": 0.001}) == 0.001
        return _selector_fds(loop) - n0

    assert asyncio.run(main()) == 1  # registered once, reused
    gc.collect()
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        assert asyncio.run(main()) == 1
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= fds + 2


class _NoReaderLoop(asyncio.SelectorEventLoop):
    def add_reader(self, fd: Any, callback: Any, *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError("no readers here")


def test_loop_without_add_reader_falls_back(reg: Registry) -> None:
    async def main() -> List[Any]:
        tasks = [reg.spawn("w.slow", {"x": i}) for i in range(30)]
        calls = [reg.call_async("diag.sleep", {"seconds": 0.001}) for _ in range(10)]
        return await asyncio.gather(*tasks, *calls)

    for _ in range(2):
        loop = _NoReaderLoop()
        try:
            out = loop.run_until_complete(main())
        finally:
            loop.close()
        assert out[:30] == [3 * i for i in range(30)]


def test_cancelling_the_awaiting_side_still_cancels(reg: Registry) -> None:
    cancelled = threading.Event()

    @reg.tool(name="w.forever")
    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cancelled.set()

    async def _await(t: Any) -> Any:
        return await t

    async def main() -> None:
        t = reg.spawn("w.forever")
        waiter = asyncio.ensure_future(_await(t))
        await asyncio.sleep(0.05)
        waiter.cancel()  # cancelling the awaiting coroutine cancels the task
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
    assert cancelled.wait(10)


def test_shutdown_with_starts_queued_answers_every_call(reg: Registry) -> None:
    for _ in range(3):
        tasks = [reg.spawn("diag.call", {"name": "w.slow", "args": {"x": i}}) for i in range(300)]
        agent_runtime.shutdown()
        deadline = time.monotonic() + 30
        for i, t in enumerate(tasks):
            try:
                assert t.result(max(0.1, deadline - time.monotonic())) == 3 * i
            except TimeoutError:
                raise AssertionError(f"{t!r} never finished after shutdown") from None
            except agent_runtime.AgentRuntimeError:
                assert t.status in ("cancelled", "failed")  # answered: cut short by shutdown
            assert t.done()
    # The runtime restarts and the direct path works again.
    assert reg.spawn("diag.call", {"name": "w.slow", "args": {"x": 2}}).result(30) == 6
