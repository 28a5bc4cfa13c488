"""Scale-out: stateless MCP over HTTP, health/readiness and drain, the multi-endpoint Python
gRPC client, and replicas behind a real nginx (Debian's package) with one replica killed
mid-run: no call lost silently, none run twice."""

import collections
import concurrent.futures
import json
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Dict, List, Optional, Tuple

import pytest

grpc = pytest.importorskip("grpc", reason="the gRPC tests need grpcio")

from agent_runtime.grpc import Client, not_started
from scale_nginx import LOST_MESSAGE, Nginx, Replica, nginx_binary

MCP_HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2025-06-18",
}


@pytest.fixture
def replicas(tmp_path):
    started: List[Replica] = []

    def start(n: int, *extra: str) -> List[Replica]:
        for i in range(n):
            started.append(Replica(len(started), str(tmp_path / f"replica{len(started)}.log"), extra))
        return started[-n:]

    yield start
    for r in started:
        if r.server.proc.poll() is None:
            r.stop()


def post(
    url: str, message: dict, headers: Optional[Dict[str, str]] = None
) -> Tuple[int, Dict[str, str], bytes]:
    req = urllib.request.Request(url, data=json.dumps(message).encode(), method="POST")
    for k, v in {**MCP_HEADERS, **(headers or {})}.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def get(url: str) -> Tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def base(url: str) -> str:
    return url.rsplit("/mcp", 1)[0]


def test_stateless_mcp_any_replica_answers_any_request(replicas):
    a, b = replicas(2)
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    status, headers, body = post(a.mcp_url, init)
    assert status == 200, body
    assert "mcp-session-id" not in headers, headers
    assert json.loads(body)["result"]["serverInfo"]["name"] == "agent-runtime"
    # The rest goes alternately to the other process, which never saw the initialize.
    status, _, _ = post(b.mcp_url, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert status == 202
    seen = collections.Counter()
    for i in range(20):
        target = (a, b)[i % 2]
        if i % 5 == 0:
            msg = {"jsonrpc": "2.0", "id": 100 + i, "method": "tools/list"}
        else:
            msg = {
                "jsonrpc": "2.0",
                "id": 100 + i,
                "method": "tools/call",
                "params": {"name": "scale.record", "arguments": {"call_id": f"raw-{i}"}},
            }
        status, headers, body = post(target.mcp_url, msg)
        assert status == 200, body
        assert headers["content-type"].startswith("application/json"), headers
        reply = json.loads(body)
        assert reply["id"] == 100 + i
        if msg["method"] == "tools/list":
            assert "scale.record" in [t["name"] for t in reply["result"]["tools"]]
        else:
            assert not reply["result"].get("isError"), reply
            seen[reply["result"]["structuredContent"]["replica"]] += 1
    assert seen == {str(a.index): 8, str(b.index): 8}
    # What needs a session is refused without one: no listen stream to open.
    req = urllib.request.Request(a.mcp_url, headers={"accept": "text/event-stream"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code in (405, 400), e.value.code


def test_official_mcp_client_against_stateless_replicas(replicas):
    mcp = pytest.importorskip("mcp", reason="needs the `mcp` package")
    import asyncio

    a, b = replicas(2)

    async def main() -> collections.Counter:
        seen: collections.Counter = collections.Counter()
        for mode in (None, "legacy"):
            for r in (a, b):
                kw = {"mode": mode} if mode else {}
                async with mcp.Client(r.mcp_url, **kw) as c:
                    for i in range(3):
                        res = await c.call_tool("scale.record", {"call_id": f"{mode}-{r.index}-{i}"})
                        assert not res.is_error, res
                        seen[res.structured_content["replica"]] += 1
        return seen

    assert asyncio.run(asyncio.wait_for(main(), 60)) == {str(a.index): 6, str(b.index): 6}


def test_health_readiness_and_drain_on_sigterm(replicas):
    (r,) = replicas(1, "--drain-grace", "2", "--token", "s3cret")
    url = base(r.mcp_url)
    # Probes need no token (and any Host); the MCP endpoint does.
    assert get(url + "/healthz") == (200, "ok\n")
    assert get(url + "/readyz") == (200, "ready\n")
    status, _, _ = post(r.mcp_url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert status == 401
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    ch = grpc.insecure_channel(r.grpc_addr)
    health = health_pb2_grpc.HealthStub(ch)

    def grpc_status() -> int:
        return health.Check(health_pb2.HealthCheckRequest(service="python.PythonService"), timeout=5).status

    assert grpc_status() == health_pb2.HealthCheckResponse.SERVING
    client = Client(r.grpc_addr, token="s3cret")
    pool = concurrent.futures.ThreadPoolExecutor(2)
    slow = pool.submit(client.run_tool, "scale.record", {"call_id": "slow", "sleep": 3.0})
    call = {"name": "scale.record", "arguments": {"call_id": "slow-mcp", "sleep": 3.0}}
    slow_mcp = pool.submit(
        post,
        r.mcp_url,
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call},
        {"authorization": "Bearer s3cret"},
    )
    deadline = time.monotonic() + 10
    while not {"slow", "slow-mcp"} <= set(r.executions()):
        assert time.monotonic() < deadline, "the slow calls never started"
        time.sleep(0.02)
    r.server.proc.send_signal(signal.SIGTERM)
    # Not ready first (both transports), while still alive and still serving new calls.
    deadline = time.monotonic() + 10
    while get(url + "/readyz")[0] != 503:
        assert time.monotonic() < deadline, "readyz never turned 503"
        time.sleep(0.02)
    status, text = get(url + "/readyz")
    assert "draining" in text
    assert grpc_status() == health_pb2.HealthCheckResponse.NOT_SERVING
    assert get(url + "/healthz")[0] == 200
    assert client.run_tool("scale.record", {"call_id": "during-grace"})["id"] == "during-grace"
    # The calls in flight finish (the grace is shorter than them); then the process exits.
    assert slow.result(30) == {"replica": "0", "id": "slow"}
    status, _, body = slow_mcp.result(30)
    assert status == 200, body
    assert json.loads(body)["result"]["structuredContent"] == {"replica": "0", "id": "slow-mcp"}
    assert r.server.proc.wait(30) == 0, "".join(r.server.lines)
    assert sorted(r.executions()) == ["during-grace", "slow", "slow-mcp"]
    pool.shutdown()
    ch.close()
    client.close()


def run_load(
    client: Client,
    n: int,
    workers: int,
    prefix: str,
    on_progress=None,
    sleep: float = 0.0,
) -> Tuple[Dict[str, str], Dict[str, BaseException]]:
    """`n` calls of scale.record over `workers` threads: (call id → replica, call id → error)."""
    ok: Dict[str, str] = {}
    failed: Dict[str, BaseException] = {}
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            cid = f"{prefix}-{i}-{uuid.uuid4().hex[:8]}"
            try:
                out = client.run_tool("scale.record", {"call_id": cid, "sleep": sleep})
                with lock:
                    ok[cid] = out["replica"]
                    done = len(ok) + len(failed)
            except grpc.RpcError as e:
                with lock:
                    failed[cid] = e
                    done = len(ok) + len(failed)
            if on_progress is not None:
                on_progress(done)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok, failed


def check_exactly_once(
    all_replicas: List[Replica], ok: Dict[str, str], failed: Dict[str, BaseException], killed: Replica
):
    runs: collections.Counter = collections.Counter()
    where: Dict[str, str] = {}
    for r in all_replicas:
        for cid in r.executions():
            runs[cid] += 1
            where[cid] = str(r.index)
    twice = [c for c, k in runs.items() if k > 1]
    assert not twice, f"calls that ran more than once: {twice[:10]}"
    for cid, replica in ok.items():
        assert runs[cid] == 1 and where[cid] == replica, (cid, replica, runs[cid])
    for cid in failed:
        # A failed call was in flight on the killed replica: it ran there or nowhere.
        assert where.get(cid, str(killed.index)) == str(killed.index), (cid, where.get(cid))


def test_python_client_fails_over_when_one_of_three_is_killed(replicas):
    rs = replicas(3)
    client = Client([r.grpc_addr for r in rs], timeout=30)
    victim = rs[1]
    killed = threading.Event()

    def progress(done: int) -> None:
        if done >= 300 and not killed.is_set():
            killed.set()
            victim.kill()

    ok, failed = run_load(client, 1000, 6, "direct", progress, sleep=0.002)
    assert killed.is_set()
    assert len(ok) + len(failed) == 1000
    # Only calls in flight on the killed replica may fail, and they are not retried.
    assert len(failed) <= 6, {k: str(v) for k, v in failed.items()}
    for e in failed.values():
        assert not not_started(e), e
    counts = collections.Counter(ok.values())
    assert all(counts[str(r.index)] > 50 for r in rs), counts
    check_exactly_once(rs, ok, failed, victim)
    # Marked down and never up again (nothing answers there). Whether it is inside its backoff
    # *now* depends on how long the checks above took, so the backoff itself is what is checked.
    dead = [e for e in client._endpoints if e.address == victim.grpc_addr]
    assert len(dead) == 1 and dead[0].backoff > 0, dead
    print(
        f"\ndirect: {len(ok)} ok, {len(failed)} failed in flight on the killed replica; per replica {dict(counts)}"
    )
    client.close()


needs_nginx = pytest.mark.skipif(
    nginx_binary() is None,
    reason="nginx is not installed (.ci/setup installs Debian's nginx-light with apt-get)",
)


@needs_nginx
def test_nginx_10k_grpc_calls_one_replica_killed(replicas, tmp_path):
    rs = replicas(3)
    lb = Nginx(str(tmp_path), [r.grpc_addr for r in rs], [r.mcp_hostport for r in rs])
    try:
        client = Client(lb.grpc_addr, timeout=30)
        victim = rs[2]
        at_kill: Dict[str, int] = {}
        killed = threading.Event()

        def progress(done: int) -> None:
            if done >= 4000 and not killed.is_set():
                killed.set()
                for r in rs:
                    at_kill[str(r.index)] = len(r.executions())
                victim.kill()

        ok, failed = run_load(client, 10_000, 8, "lb", progress, sleep=0.001)
        assert killed.is_set()
        assert len(ok) + len(failed) == 10_000
        # Before the kill nginx spread the calls over all three.
        assert all(c > 800 for c in at_kill.values()), at_kill
        for e in failed.values():
            assert e.code() == grpc.StatusCode.INTERNAL and e.details() == LOST_MESSAGE, e
        # Only calls in flight on the killed replica (at most one per client thread) fail.
        assert len(failed) <= 8, len(failed)
        check_exactly_once(rs, ok, failed, victim)
        counts = collections.Counter(ok.values())
        assert counts[str(victim.index)] <= at_kill[str(victim.index)]
        print(
            f"\nnginx: {len(ok)} ok, {len(failed)} failed (in flight on the killed replica), "
            f"0 duplicated; per replica {dict(counts)}; at the kill {at_kill}"
        )
        client.close()
    finally:
        lb.stop()


@needs_nginx
def test_nginx_stateless_mcp_with_the_official_client(replicas, tmp_path):
    mcp = pytest.importorskip("mcp", reason="needs the `mcp` package")
    import asyncio

    rs = replicas(3)
    lb = Nginx(str(tmp_path), [r.grpc_addr for r in rs], [r.mcp_hostport for r in rs])

    async def calls(n: int, prefix: str, mode: Optional[str]) -> collections.Counter:
        seen: collections.Counter = collections.Counter()
        kw = {"mode": mode} if mode else {}
        async with mcp.Client(lb.mcp_url, **kw) as c:
            for i in range(n):
                res = await c.call_tool("scale.record", {"call_id": f"{prefix}-{i}"})
                assert not res.is_error, res
                seen[res.structured_content["replica"]] += 1
        return seen

    try:
        for mode in (None, "legacy"):
            seen = asyncio.run(asyncio.wait_for(calls(150, f"mcp-{mode}", mode), 120))
            assert sorted(seen) == ["0", "1", "2"] and all(v > 20 for v in seen.values()), seen
        # A replica gone between calls: every later call succeeds on the others.
        rs[0].kill()
        seen = asyncio.run(asyncio.wait_for(calls(150, "after-kill", None), 120))
        assert sum(seen.values()) == 150 and "0" not in seen, seen
        runs = collections.Counter(c for r in rs for c in r.executions())
        assert max(runs.values()) == 1
        assert get(f"http://127.0.0.1:{lb.mcp_port}/readyz")[0] == 200
    finally:
        lb.stop()


def test_bad_scale_flags_are_usage_errors():
    import subprocess
    import sys

    from servers import HERE, server_env

    def run(*args: str) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(
            [sys.executable, "-m", "agent_runtime", "serve", *args],
            check=False,
            capture_output=True,
            text=True,
            env=server_env(),
            cwd=HERE,
            timeout=60,
        )

    p = run("--mcp-http", "127.0.0.1:0", "--mcp-path", "/readyz")
    assert p.returncode == 2 and "--mcp-path" in p.stderr and "/readyz" in p.stderr, p.stderr
    p = run("--grpc", "127.0.0.1:0", "--drain-grace", "-1")
    assert p.returncode == 2 and "drain grace" in p.stderr, p.stderr
    p = run("--grpc", "127.0.0.1:0", "--mcp-stateless")
    assert p.returncode == 2 and "--mcp-http" in p.stderr, p.stderr


def test_readyz_waits_for_the_isolation_pool():
    from servers import ServerProcess

    s = ServerProcess(["--isolate", "iso_tools", "serve", "--mcp-http", "127.0.0.1:0"])
    try:
        url = base(s.addr)
        first = get(url + "/readyz")
        # Ready once a warm worker is up (it may already be); until then 503 naming the pool.
        assert first[0] == 200 or "isolation pool" in first[1], first
        deadline = time.monotonic() + 60
        while get(url + "/readyz")[0] != 200:
            assert time.monotonic() < deadline, get(url + "/readyz")
            time.sleep(0.05)
        assert get(url + "/healthz")[0] == 200
    finally:
        assert s.stop() == 0, "".join(s.lines)
