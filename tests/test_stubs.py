"""The `_native.pyi` stubs describe exactly what the extension module exports."""

import ast
import inspect
from pathlib import Path

import agent_runtime
from agent_runtime import _native


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
    assert stubbed == exported


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
