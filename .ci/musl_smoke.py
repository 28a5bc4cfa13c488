"""Smoke test of the musllinux wheel, run by .ci/musl-smoke with a musl-linked CPython from a
venv the wheel was pip-installed into (not from the source tree).

    python .ci/musl_smoke.py WHEEL_FILE_NAME

Checks that the process really runs on musl (no glibc mapped), that pip's own tag list for this
interpreter accepts the wheel's tag and no manylinux one (so pip on Alpine picks this wheel and
never a glibc one), then calls Rust tools, Python tools (sync, async, Rust calling Python), an
argument error, `shell.run` with a timeout and a pty shell session: the libc-facing parts.
"""

import asyncio
import glob
import os
import platform
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import List, Set


def mapped_files() -> Set[str]:
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if len(line.split()) >= 6}


def wheel_tags(file_name: str) -> List[str]:
    """`cp38-abi3-musllinux_1_2_x86_64` from the file name (platform tags may be dotted)."""
    py, abi, plats = file_name[: -len(".whl")].split("-")[-3:]
    return [f"{p}-{a}-{pl}" for p in py.split(".") for a in abi.split(".") for pl in plats.split(".")]


def check_platform(file_name: str) -> None:
    # After the extension was loaded: musl's loader (Alpine's /lib/ld-musl-*.so.1 is the file
    # itself, Debian's a link to it) and the extension are mapped, no glibc is.
    files = mapped_files()
    musl = {os.path.realpath(p) for p in glob.glob("/lib/ld-musl-*.so.1")}
    assert musl & files, (sorted(musl), sorted(files))
    assert any(f.endswith("_native.abi3.so") for f in files), sorted(files)
    glibc = [f for f in files if os.path.basename(f).startswith(("libc.so.6", "ld-linux"))]
    assert not glibc, glibc
    from pip._vendor.packaging import tags

    supported = {str(t) for t in tags.sys_tags()}
    assert set(wheel_tags(file_name)) & supported, (file_name, sorted(supported)[:10])
    manylinux = sorted(t for t in supported if "manylinux" in t)
    assert not manylinux, manylinux[:5]


def check_tools() -> None:
    import agent_runtime
    from agent_runtime import tool

    native = agent_runtime._native.__file__
    assert "site-packages" in native and native.endswith(".abi3.so"), native
    assert agent_runtime._native.ABI3

    @tool
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper() + "!"

    @tool
    async def twice(n: int) -> int:
        """Double n after yielding to the event loop."""
        await asyncio.sleep(0)
        return 2 * n

    agent_runtime.register_diagnostic_tools()
    agent_runtime.register_builtin_tools(["fs", "shell"])
    assert agent_runtime.call("diag.add", {"a": 2, "b": 3}) == 5
    assert agent_runtime.call("shout", {"text": "musl"}) == "MUSL!"
    assert agent_runtime.call("diag.call", {"name": "shout", "args": {"text": "via rust"}}) == "VIA RUST!"
    assert asyncio.run(agent_runtime.call_async("twice", {"n": 21})) == 42
    # From threads Python started (their stack size is the interpreter's, not Rust's).
    with ThreadPoolExecutor(4) as pool:
        sums = list(pool.map(lambda i: agent_runtime.call("diag.add", {"a": i, "b": 1}), range(8)))
        shouts = list(pool.map(lambda i: agent_runtime.call("shout", {"text": str(i)}), range(8)))
    assert sums == list(range(1, 9)) and shouts == [f"{i}!" for i in range(8)], (sums, shouts)
    assert "venv" in str(agent_runtime.call("fs.list", {"path": "."}))
    try:
        agent_runtime.call("diag.add", {"a": "x", "b": 1})
    except agent_runtime.InvalidArguments as e:
        print("InvalidArguments as expected:", str(e).splitlines()[0])
    else:
        raise AssertionError("bad arguments accepted")
    r = agent_runtime.call("shell.run", {"command": "echo out; echo err >&2; sleep 60", "timeout": 1})
    assert (r["stdout"], r["timed_out"]) == ("out\n", True), r
    assert r["stderr"].startswith("err\n"), r
    agent_runtime.call("shell.session.create", {"session": "m"})
    try:
        r = agent_runtime.call("shell.session.run", {"session": "m", "command": "echo $((6 * 7))"})
        assert (r["output"], r["exit_code"], r["status"]) == ("42\n", 0, "completed"), r
    finally:
        agent_runtime.call("shell.session.close", {"session": "m"})
    print("musl wheel OK:", agent_runtime.__version__, platform.machine(), "CPython", sys.version.split()[0])


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    check_tools()
    check_platform(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
