"""Built-in Rust tools (fs.*, edit, search.*) called from Python: outputs, errors, concurrency."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Dict, List

import agent_runtime
import pytest
from agent_runtime import InvalidArguments, RegistrationError, Registry, ToolError

agent_runtime.register_builtin_tools(["fs", "edit", "search"])

call = agent_runtime.call
CAT = "Here's the result of running `cat -n` on {}:\n"


def out(name: str, args: Dict[str, Any]) -> str:
    result = call(name, args)
    assert isinstance(result["output"], str)
    return result["output"]


def invalid_field(name: str, args: Dict[str, Any]) -> str:
    with pytest.raises(InvalidArguments) as e:
        call(name, args)
    return e.value.path


def tool_error(name: str, args: Dict[str, Any]) -> str:
    with pytest.raises(ToolError) as e:
        call(name, args)
    return str(e.value)


# ---------------------------------------------------------------- registration


def test_groups_default_and_unknown():
    r = Registry()
    agent_runtime.register_builtin_tools(registry=r)
    mine = {"edit", "fs.list", "fs.read", "fs.write", "search.dir", "search.file", "search.find_file"}
    assert mine <= set(r.names()) and "diag.echo" not in r
    r2 = Registry()
    agent_runtime.register_builtin_tools(["search", "diag"], r2)
    assert "diag.echo" in r2 and "search.dir" in r2 and "edit" not in r2
    with pytest.raises(RegistrationError, match=r"unknown built-in tool group 'shel' \(valid groups: diag, fs, edit, search"):
        agent_runtime.register_builtin_tools(["shel"], Registry())
    with pytest.raises(TypeError):
        agent_runtime.register_builtin_tools("fs", Registry())  # type: ignore[arg-type]
    spec = r.spec("search.dir")
    assert spec["input_schema"]["required"] == ["search_term"]
    assert "output" in spec["output_schema"]["properties"]


# ---------------------------------------------------------------- fs


def test_fs_round_trip_and_ranges(tmp_path: Path):
    f = tmp_path / "deep" / "dir" / "a.txt"
    assert call("fs.write", {"path": str(f), "content": "one\ntwo\nthree\n"}) == {
        "path": str(f),
        "bytes_written": 14,
        "created": True,
    }
    call("fs.write", {"path": str(f), "content": "four\n", "append": True})
    r = call("fs.read", {"path": str(f)})
    assert r["content"] == "one\ntwo\nthree\nfour\n" and r["eof"] is True and r["size"] == 19
    r = call("fs.read", {"path": str(f), "start_line": 2, "end_line": 3})
    assert (r["content"], r["offset"], r["eof"]) == ("two\nthree\n", 4, False)
    r = call("fs.read", {"path": str(f), "offset": 4, "limit": 3})
    assert (r["content"], r["eof"]) == ("two", False)
    assert invalid_field("fs.read", {"path": str(f), "offset": -1}) == "offset"
    assert invalid_field("fs.read", {"path": str(f), "start_line": 1, "limit": 1}) == "limit"
    assert invalid_field("fs.read", {"path": str(f), "start_line": 99}) == "start_line"
    assert invalid_field("fs.write", {"path": str(f)}) == "content"
    assert invalid_field("fs.list", {"path": str(tmp_path), "max_entries": 0}) == "max_entries"


def test_fs_binary_and_os_errors(tmp_path: Path):
    f = tmp_path / "blob.bin"
    data = bytes(range(256))
    call("fs.write", {"path": str(f), "content": base64.b64encode(data).decode(), "encoding": "base64"})
    assert f.read_bytes() == data
    assert base64.b64decode(call("fs.read", {"path": str(f), "encoding": "base64"})["content"]) == data
    msg = tool_error("fs.read", {"path": str(f)})
    assert f"{f} is not valid UTF-8 text (invalid byte 0x80 at offset 128)" in msg
    missing = tmp_path / "missing.txt"
    assert f"cannot read {missing}: No such file or directory (os error 2)" in tool_error("fs.read", {"path": str(missing)})
    assert "is a directory" in tool_error("fs.read", {"path": str(tmp_path)})
    assert "not a directory" in tool_error("fs.list", {"path": str(f)})


def test_fs_list(tmp_path: Path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    (tmp_path / "z.txt").write_text("hi")
    (tmp_path / ".hidden").write_text("")
    (tmp_path / "out.log").write_text("")
    (tmp_path / ".gitignore").write_text("*.log\n")
    r = call("fs.list", {"path": str(tmp_path), "recursive": True})
    assert r["entries"] == [
        {"path": "src", "type": "dir"},
        {"path": "src/m.py", "type": "file", "size": 6},
        {"path": "z.txt", "type": "file", "size": 2},
    ]
    assert r["truncated"] is False and r["errors"] == []
    r = call("fs.list", {"path": str(tmp_path), "include_hidden": True, "gitignore": False})
    assert [e["path"] for e in r["entries"]] == [".gitignore", ".hidden", "out.log", "src", "z.txt"]


# ---------------------------------------------------------------- edit


def test_edit_create_view_replace_undo(tmp_path: Path):
    f = str(tmp_path / "m.py")
    assert out("edit", {"command": "create", "path": f, "file_text": "def f():\n\treturn 1\n"}) == (
        f"File created successfully at: {f}"
    )
    assert out("edit", {"command": "view", "path": f}) == CAT.format(f) + "     1\tdef f():\n     2\t        return 1\n     3\t\n"
    assert out("edit", {"command": "view", "path": f, "view_range": [2, 2]}) == CAT.format(f) + "     2\t        return 1\n"
    res = out("edit", {"command": "str_replace", "path": f, "old_str": "return 1", "new_str": "return 2"})
    assert res == (
        f"The file {f} has been edited. "
        + CAT.format(f"a snippet of {f}")
        + "     1\tdef f():\n     2\t        return 2\n"
        + "Review the changes and make sure they are as expected. Edit the file again if necessary."
    )
    res = out("edit", {"command": "insert", "path": f, "insert_line": 1, "new_str": "    '''doc'''"})
    assert res.startswith(f"The file {f} has been edited. " + CAT.format("a snippet of the edited file") + "     1\tdef f():\n")
    assert Path(f).read_text() == "def f():\n    '''doc'''\n        return 2\n"
    out("edit", {"command": "undo_edit", "path": f})
    out("edit", {"command": "undo_edit", "path": f})
    assert Path(f).read_text() == "def f():\n\treturn 1\n"


def test_edit_errors(tmp_path: Path):
    f = str(tmp_path / "e.txt")
    Path(f).write_text("a\nb\na\n")
    assert tool_error("edit", {"command": "str_replace", "path": f, "old_str": "zzz"}).endswith(
        f"No replacement was performed, old_str `zzz` did not appear verbatim in {f}."
    )
    assert tool_error("edit", {"command": "str_replace", "path": f, "old_str": "a"}).endswith(
        "No replacement was performed. Multiple occurrences of old_str `a` in lines [1, 3]. Please ensure it is unique"
    )
    assert tool_error("edit", {"command": "create", "path": f, "file_text": ""}).endswith(
        f"File already exists at: {f}. Cannot overwrite files using command `create`."
    )
    other = str(tmp_path / "never-edited.txt")
    Path(other).write_text("x")
    assert tool_error("edit", {"command": "undo_edit", "path": other}).endswith(f"No edit history found for {other}.")
    assert tool_error("edit", {"command": "view", "path": f + ".nope"}).endswith(
        f"The path {f}.nope does not exist. Please provide a valid path."
    )
    with pytest.raises(InvalidArguments) as e:
        call("edit", {"command": "view", "path": "relative.txt"})
    assert e.value.path == "path" and "is not an absolute path, it should start with `/`" in str(e.value)
    with pytest.raises(InvalidArguments) as e:
        call("edit", {"command": "view", "path": f, "view_range": [3, 1]})
    assert e.value.path == "view_range"
    assert "Its second element `1` should be larger or equal than its first `3`" in str(e.value)
    assert invalid_field("edit", {"command": "insert", "path": f, "new_str": "x"}) == "insert_line"
    assert invalid_field("edit", {"command": "insert", "path": f, "insert_line": 9, "new_str": "x"}) == "insert_line"
    assert invalid_field("edit", {"command": "create", "path": str(tmp_path / "n.txt")}) == "file_text"
    assert invalid_field("edit", {"command": "rename", "path": f}) == "command"
    assert invalid_field("edit", {"command": "view", "path": f, "view_range": "1-2"}) == "view_range"


def test_edit_clips_long_views(tmp_path: Path):
    f = tmp_path / "long.txt"
    f.write_text("".join(f"line {i:06d}\n" for i in range(5000)))
    res = out("edit", {"command": "view", "path": str(f)})
    assert res.endswith(
        "<response clipped><NOTE>To save on context only part of this file has been shown to you. You should "
        "retry this tool after you have searched inside the file with `grep -n` in order to find the line numbers "
        "of what you are looking for.</NOTE>\n"
    )


# ---------------------------------------------------------------- search


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path.resolve()
    (root / "pkg").mkdir()
    (root / "pkg" / "a.py").write_text("def foo(x):\n    return foo(x)\n")
    (root / "pkg" / "b.py").write_text("foo(1)\n")
    (root / "notes.md").write_text("no calls here\n")
    (root / "data.bin").write_bytes(b"foo(\x00\x00")
    return root


def test_search_dir_output(tree: Path):
    assert out("search.dir", {"search_term": "foo(", "dir": str(tree)}) == (
        f'Found 3 matches for "foo(" in {tree}:\n'
        f"{tree}/pkg/a.py (2 matches)\n"
        f"{tree}/pkg/b.py (1 matches)\n"
        f'End of matches for "foo(" in {tree}'
    )
    r = call("search.dir", {"search_term": "nothing", "dir": str(tree)})
    assert r["output"] == f'No matches found for "nothing" in {tree}' and r["files"] == []
    assert tool_error("search.dir", {"search_term": "x", "dir": str(tree / "nope")}).endswith(
        f"Directory {tree / 'nope'} not found"
    )
    assert invalid_field("search.dir", {"search_term": "a\\(", "dir": str(tree)}) == "search_term"
    assert invalid_field("search.dir", {"search_term": "", "dir": str(tree)}) == "search_term"


def test_search_file_and_find_file(tree: Path):
    f = tree / "pkg" / "a.py"
    assert out("search.file", {"search_term": "foo", "file": str(f)}) == (
        f'Found 2 matches for "foo" in {f}:\nLine 1:def foo(x):\nLine 2:    return foo(x)\nEnd of matches for "foo" in {f}'
    )
    assert tool_error("search.file", {"search_term": "foo", "file": str(tree / "x.py")}).endswith(
        f"File name {tree / 'x.py'} not found. Please provide a valid file name."
    )
    assert out("search.find_file", {"file_name": "*.py", "dir": str(tree)}) == (
        f'Found 2 matches for "*.py" in {tree}:\n{tree}/pkg/a.py\n{tree}/pkg/b.py'
    )
    assert invalid_field("search.find_file", {"file_name": "pkg/a.py", "dir": str(tree)}) == "file_name"


def _grep_counts(term: str, root: str) -> Dict[str, int]:
    env = dict(os.environ, LC_ALL="C")
    p = subprocess.run(["grep", "-rIc", "--", term, root], check=False, capture_output=True, text=True, env=env)
    counts = {}
    for line in p.stdout.splitlines():
        path, _, n = line.rpartition(":")
        if int(n) and "/." not in path[len(root) :]:
            counts[path] = int(n)
    return counts


@pytest.mark.skipif(shutil.which("grep") is None, reason="grep is not installed")
@pytest.mark.parametrize("term", ["def ", "import (", "self\\.[a-z]*(", "^class \\|^def ", "[0-9]\\{3\\}"])
def test_search_dir_counts_match_grep(term: str):
    root = str(Path(json.__file__).resolve().parent.parent / "email")
    r = call("search.dir", {"search_term": term, "dir": root, "gitignore": False})
    expected = _grep_counts(term, root)
    if r["too_many"]:
        assert r["total_files"] == len(expected)
    else:
        assert {f["path"]: f["matches"] for f in r["files"]} == expected
    assert r["total_matches"] == sum(expected.values())


# ---------------------------------------------------------------- async and threads


def test_async_and_concurrent_calls(tmp_path: Path, tree: Path):
    async def main() -> List[Any]:
        return await asyncio.gather(
            *[agent_runtime.call_async("search.dir", {"search_term": "foo", "dir": str(tree)}) for _ in range(20)]
        )

    results = asyncio.run(main())
    assert {r["total_matches"] for r in results} == {3}

    errors: List[BaseException] = []

    def worker(i: int) -> None:
        try:
            f = str(tmp_path / f"w{i}.txt")
            out("edit", {"command": "create", "path": f, "file_text": f"value {i}\n"})
            for k in range(20):
                out("edit", {"command": "str_replace", "path": f, "old_str": f"value {i}.{k - 1}" if k else f"value {i}", "new_str": f"value {i}.{k}"})
            assert Path(f).read_text() == f"value {i}.19\n"
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
