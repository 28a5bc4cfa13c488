"""Benchmarks for agent-runtime. Run all areas side by side with ``python -m benches``.

Each area is a module in this package with ``AREA: str`` and
``run(quick: bool) -> List[common.Row]``; list it in ``__main__.AREAS`` to include it.
Shared timing / RSS / rendering helpers live in :mod:`benches.common`.
"""
