"""``python -m benches.scaleout [--quick] [--out PATH]``: replicas behind nginx (issue 17).

Throughput of a sync Python tool (``scale.record`` from tests/scale_tools.py) over gRPC:
direct to one replica, and through Debian's nginx (``grpc_pass``, round robin) in front of 1, 2
and 3 replicas — all measured side by side in one run: every configuration is up at once and
the rounds interleave them, so drift on the machine hits each alike; the figure is the median
of the rounds. The driver is grpcio (C core, one channel, ``CONCURRENCY`` calls in flight) in
this process. Honest caveat: on a 2-core machine the replicas, nginx and the driver share two
cores, so scaling is capped; the point is the ratio to one replica behind the same nginx, and
nginx's overhead against a direct connection. Build with ``maturin develop --release`` first.
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from agent_runtime.grpc import _decode, _encode
from scale_nginx import Nginx, Replica, nginx_binary

import grpc

CONCURRENCY = 32
METHOD = "/python.PythonService/RunTool"


def _throughput(addr: str, calls: int) -> float:
    """Calls per second for `calls` RunTool calls with CONCURRENCY in flight on one channel."""
    ch = grpc.insecure_channel(addr)
    call = ch.unary_unary(METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    request = _encode([(1, "scale.record"), (2, '{"call_id": "bench"}')])
    # Warm the connection (and nginx's upstreams) first.
    for _ in range(CONCURRENCY):
        call(request, timeout=30)
    slots = threading.Semaphore(CONCURRENCY)
    done = threading.Event()
    lock = threading.Lock()
    left = [calls]
    errors: List[str] = []

    def finished(f: "grpc.Future") -> None:
        try:
            if _decode(f.result()).get(2):
                errors.append("tool error")
        except grpc.RpcError as e:
            errors.append(str(e.code()))
        slots.release()
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    t0 = time.perf_counter()
    for _ in range(calls):
        slots.acquire()
        call.future(request, timeout=30).add_done_callback(finished)
    done.wait()
    secs = time.perf_counter() - t0
    ch.close()
    if errors:
        raise RuntimeError(f"{len(errors)} failed calls via {addr}: {errors[:3]}")
    return calls / secs


def run(quick: bool) -> Tuple[Dict[str, float], Dict[str, List[float]]]:
    if nginx_binary() is None:
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    rounds, calls = (3, 1000) if quick else (7, 5000)
    with tempfile.TemporaryDirectory() as tmp:
        replicas = [Replica(i, "", ()) for i in range(3)]
        lbs: List[Nginx] = []
        try:
            targets: Dict[str, str] = {"direct, 1 replica": replicas[0].grpc_addr}
            for n in (1, 2, 3):
                d = Path(tmp) / f"nginx{n}"
                d.mkdir()
                lb = Nginx(
                    str(d), [r.grpc_addr for r in replicas[:n]], [r.mcp_hostport for r in replicas[:n]]
                )
                lbs.append(lb)
                targets[f"nginx, {n} replica{'s' if n > 1 else ''}"] = lb.grpc_addr
            samples: Dict[str, List[float]] = {k: [] for k in targets}
            for _ in range(rounds):
                for label, addr in targets.items():
                    samples[label].append(_throughput(addr, calls))
            return {k: statistics.median(v) for k, v in samples.items()}, samples
        finally:
            for lb in lbs:
                lb.stop()
            for r in replicas:
                r.stop()


def render(medians: Dict[str, float], quick: bool) -> str:
    base = medians["nginx, 1 replica"]
    lines = [
        "| configuration | calls/s (median) | vs nginx + 1 replica |",
        "|---|---:|---:|",
    ]
    for label, v in medians.items():
        lines.append(f"| {label} | {v:,.0f} | {v / base:.2f}\u00d7 |")
    lines.append("")
    lines.append(
        f"`python -m benches.scaleout{' --quick' if quick else ''}`: sync Python tool over gRPC, "
        f"{CONCURRENCY} calls in flight (grpcio), rounds interleaved."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    a = ap.parse_args()
    medians, _ = run(a.quick)
    text = render(medians, a.quick)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
