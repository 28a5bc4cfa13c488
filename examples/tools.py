"""Example tools: importing this module registers them in agent_runtime's default registry."""

import asyncio
import hashlib
from typing import Dict, List, Optional

import agent_runtime


@agent_runtime.tool
def word_count(text: str, top: int = 3) -> Dict[str, object]:
    """Count words in a text.

    Args:
        text: The text to analyse.
        top: How many of the most frequent words to report.
    """
    words = [w.strip(".,;:!?").lower() for w in text.split()]
    counts: Dict[str, int] = {}
    for w in words:
        if w:
            counts[w] = counts.get(w, 0) + 1
    common = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {"words": len(words), "unique": len(counts), "top": [list(kv) for kv in common]}


@agent_runtime.tool(name="hash.sha256")
def sha256(data: bytes) -> str:
    """SHA-256 hex digest of some bytes (JSON callers send base64)."""
    return hashlib.sha256(data).hexdigest()


@agent_runtime.tool
async def fetch_many(urls: List[str], delay: float = 0.05) -> List[Dict[str, object]]:
    """Pretend to fetch several URLs concurrently (sleeps instead of doing network I/O).

    Args:
        urls: Addresses to "fetch".
        delay: Seconds each fetch takes.
    """

    async def one(u: str) -> Dict[str, object]:
        await asyncio.sleep(delay)
        return {"url": u, "status": 200, "bytes": len(u) * 100}

    return list(await asyncio.gather(*(one(u) for u in urls)))


@agent_runtime.tool
def slow_count(n: int, ctx: agent_runtime.Context, delay: float = 0.2) -> int:
    """Count to n slowly, reporting progress (the CLI shows it on a terminal).

    Args:
        n: How far to count.
        delay: Seconds per step.
    """
    import time

    for i in range(n):
        ctx.check_cancelled()
        ctx.progress(i + 1, n, f"counted {i + 1}")
        time.sleep(delay)
    return n


@agent_runtime.tool
def divide(a: float, b: float, round_to: Optional[int] = None) -> float:
    """Divide a by b; raises ZeroDivisionError for b == 0 (shows error propagation)."""
    q = a / b
    return round(q, round_to) if round_to is not None else q


agent_runtime.register_diagnostic_tools()
