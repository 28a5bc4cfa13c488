"""Both directions in one script: Python calling Rust tools, Rust calling Python tools.

Run with `bash examples/run` (sets everything up first).
"""

import asyncio
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import agent_runtime
import tools  # noqa: F401  (registers the example tools at import)


def main() -> None:
    print("registered tools:")
    for spec in agent_runtime.tools():
        first_line = spec["description"].splitlines()[0] if spec["description"] else ""
        print(f"  {spec['name']:<16} {first_line}")

    print("\nPython -> Python tool:", agent_runtime.call("word_count", {"text": "the cat and the hat", "top": 2}))
    print("Python -> Rust tool:  ", agent_runtime.call("diag.add", {"a": 2, "b": 40}))
    # diag.call is a Rust tool that calls another tool through the registry: Rust -> Python.
    print(
        "Rust -> Python tool:  ",
        agent_runtime.call("diag.call", {"name": "hash.sha256", "args": {"data": base64.b64encode(b"hi").decode()}}),
    )

    async def concurrent() -> None:
        urls = [f"https://example.com/{i}" for i in range(5)]
        results = await asyncio.gather(
            agent_runtime.call_async("fetch_many", {"urls": urls}),
            agent_runtime.call_async("diag.sleep", {"seconds": 0.05}),
            agent_runtime.call_async("diag.call", {"name": "fetch_many", "args": {"urls": urls[:2]}}),
        )
        print("asyncio, concurrently:", json.dumps(results)[:120] + "...")

    asyncio.run(concurrent())

    try:
        agent_runtime.call("divide", {"a": 1, "b": 0})
    except ZeroDivisionError as e:
        print("Python exception comes back as itself:", repr(e))
    try:
        agent_runtime.call("divide", {"a": "one", "b": 2})
    except agent_runtime.InvalidArguments as e:
        print("bad input is named:", e)
    try:
        agent_runtime.call("word_cont", {"text": "x"})
    except agent_runtime.ToolNotFound as e:
        print("unknown tool:", e)


if __name__ == "__main__":
    main()
