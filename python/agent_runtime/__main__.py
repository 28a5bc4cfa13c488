"""``python -m agent_runtime`` / the ``agent-runtime`` console script (parsed in Rust)."""

import sys

from . import _native


def main() -> None:
    """Entry point of the ``agent-runtime`` command."""
    # Modules given with --path/--import resolve against the caller's working directory.
    if "" not in sys.path:
        sys.path.insert(0, "")
    raise SystemExit(_native.cli_main(["agent-runtime", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
