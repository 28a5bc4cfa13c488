"""``python -m agent_runtime`` / the ``agent-runtime`` console script (parsed in Rust)."""

import sys

from . import _native


def main() -> None:
    """Entry point of the ``agent-runtime`` command."""
    # Modules given with --path/--import resolve against the caller's working directory.
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        code = _native.cli_main(["agent-runtime", *sys.argv[1:]])
    except KeyboardInterrupt:
        # Ctrl-C: `serve` has already drained and stopped; other commands end here.
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
