"""The `_native.pyi` stubs describe exactly what the extension module exports."""

import ast
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import agent_runtime
import pytest
from agent_runtime import _native

ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")


def _optional() -> set:
    """Names the stub declares that only some builds export (the `bench` feature's hooks)."""
    names = set()
    for line in ALLOWLIST.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.rsplit(".", 1)[-1])
    return names


def _stub_tree() -> ast.Module:
    path = Path(agent_runtime.__file__).with_name("_native.pyi")
    return ast.parse(path.read_text())


def test_stub_names_match_module():
    tree = _stub_tree()
    stubbed = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stubbed.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            is_alias = isinstance(node.annotation, ast.Name) and node.annotation.id == "TypeAlias"
            if not is_alias:  # type aliases exist only for checkers
                stubbed.add(node.target.id)
    exported = {n for n in dir(_native) if not (n.startswith("__") and n != "__version__")}
    optional = _optional()
    assert stubbed - optional == exported - optional
    assert exported <= stubbed


def test_stub_methods_match_classes():
    for node in _stub_tree().body:
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_native, node.name)
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                assert hasattr(cls, item.name), f"{node.name}.{item.name}"
        if node.name == "Registry":
            public = {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}
            stubbed = {i.name for i in node.body if isinstance(i, ast.FunctionDef) and not i.name.startswith("_")}
            assert public == stubbed


def test_stubtest(tmp_path):
    """mypy's stubtest: signatures, defaults, finality of the stub against the built module."""
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI"):
            pytest.fail("mypy is not installed: CI must install it (pip install mypy) to check the stubs")
        pytest.skip("mypy is not installed (pip install mypy); CI runs this check")
    import typing_extensions

    if not hasattr(typing_extensions, "disjoint_base"):
        # The stub marks pyo3 classes with PEP 800's @disjoint_base (stubtest asks for it);
        # typing_extensions releases for this interpreter predate it. Checked on the others.
        pytest.skip(f"typing_extensions {sys.version_info[:2]} has no disjoint_base (PEP 800)")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "agent_runtime._native",
            "--allowlist",
            str(ALLOWLIST),
            # The bench hooks exist only in `--features bench` builds: pass either way.
            "--ignore-unused-allowlist",
        ],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
