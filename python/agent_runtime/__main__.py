"""``python -m agent_runtime`` / the ``agent-runtime`` console script (parsed in Rust)."""

import sys
from typing import List, Optional

from . import _native


def _not_utf8(argv: List[str]) -> Optional[str]:
    """The first argument that is not valid UTF-8 (Python keeps such bytes as surrogates)."""
    for a in argv:
        try:
            a.encode("utf-8")
        except UnicodeEncodeError:
            return a
    return None


def main() -> None:
    """Entry point of the ``agent-runtime`` command."""
    # Modules given with --path/--import resolve against the caller's working directory.
    if "" not in sys.path:
        sys.path.insert(0, "")
    argv = sys.argv[1:]
    bad = _not_utf8(argv)
    if bad is not None:
        shown = repr(bad.encode("utf-8", "surrogateescape"))[:200]
        sys.stderr.write(f"error: argument {shown} is not valid UTF-8\n")
        raise SystemExit(2)
    try:
        code = _native.cli_main(["agent-runtime", *argv])
    except KeyboardInterrupt:
        # Ctrl-C: `serve` has already drained and stopped; other commands end here.
        code = 130
    if "serve" in argv:
        _leave_server(code)
    raise SystemExit(code)


def _leave_server(code: int) -> None:
    """Exit a server that has drained: run the atexit hooks (ours stops the runtime and its
    threads), flush, and leave without interpreter finalization, where a thread still on its
    way out of Rust code can be force-unwound by CPython and abort the process."""
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
