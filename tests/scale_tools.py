"""A tool for the scale-out tests: every execution appends its call id to this replica's log
(``SCALE_LOG``), so a test can count how often each call ran, and answers which replica
(``SCALE_REPLICA``) ran it."""

import os
import time

from agent_runtime import tool

REPLICA = os.environ.get("SCALE_REPLICA", "?")
_LOG = os.environ.get("SCALE_LOG")


@tool(name="scale.record")
def record(call_id: str, sleep: float = 0.0) -> dict:
    """Record one execution of call `call_id`, optionally sleep, and name the replica."""
    if _LOG:
        # One small O_APPEND write per execution: lines never interleave between threads.
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{call_id}\n".encode())
        finally:
            os.close(fd)
    if sleep > 0:
        time.sleep(sleep)
    return {"replica": REPLICA, "id": call_id}
