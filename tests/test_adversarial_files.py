"""Hostile inputs for the built-in file tools (fs.*, edit, search.*): FIFOs, devices, /proc,
huge and sparse files, failing writes, non-UTF-8 names, symlink loops, bad paths and numbers.

Every call that could hang gets a timeout, so a regression fails instead of blocking the run.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict

import agent_runtime
import pytest
from agent_runtime import InvalidArguments, ToolError

agent_runtime.register_builtin_tools(["fs", "edit", "search"])

T = 60.0  # generous: only there to turn a hang into a failure


def call(name: str, args: Dict[str, Any]) -> Any:
    return agent_runtime.call(name, args, timeout=T)


def tool_error(name: str, args: Dict[str, Any]) -> str:
    with pytest.raises(ToolError) as e:
        call(name, args)
    return str(e.value)


def invalid(name: str, args: Dict[str, Any]) -> InvalidArguments:
    with pytest.raises(InvalidArguments) as e:
        call(name, args)
    return e.value


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    p = tmp_path / "pipe"
    os.mkfifo(p)
    return p


# ---------------------------------------------------------------- FIFOs and devices


def test_fifo_without_peer_is_refused_at_once(fifo: Path):
    for name, args in [
        ("fs.read", {"path": str(fifo)}),
        ("fs.read", {"path": str(fifo), "start_line": 1, "end_line": 1}),
        ("fs.write", {"path": str(fifo), "content": "x"}),
        ("fs.write", {"path": str(fifo), "content": "x", "append": True}),
    ]:
        assert "FIFO (named pipe), not a regular file" in tool_error(name, args)
    for command in ({"command": "view"}, {"command": "str_replace", "old_str": "a"}, {"command": "insert", "insert_line": 0, "new_str": "x"}):
        msg = tool_error("edit", dict(command, path=str(fifo)))
        assert "is a FIFO (named pipe), not a regular file" in msg
    assert tool_error("search.file", {"search_term": "x", "file": str(fifo)}).endswith("Please provide a valid file name.")
    assert fifo.is_fifo(), "a refused write leaves the FIFO alone"


def test_search_dir_with_a_fifo_inside_does_not_block(fifo: Path):
    (fifo.parent / "a.txt").write_text("needle\n")
    r = call("search.dir", {"search_term": "needle", "dir": str(fifo.parent)})
    assert r["total_matches"] == 1
    r = call("search.find_file", {"file_name": "*", "dir": str(fifo.parent)})
    assert r["total_matches"] == 1


@pytest.mark.parametrize(
    "name,args",
    [
        ("fs.read", {"path": "/dev/zero"}),
        ("fs.read", {"path": "/dev/zero", "start_line": 1, "end_line": 1}),
        ("fs.read", {"path": "/dev/urandom", "encoding": "base64"}),
        ("fs.write", {"path": "/dev/null", "content": "x"}),
        ("edit", {"command": "view", "path": "/dev/zero"}),
        ("edit", {"command": "view", "path": "/dev/zero", "view_range": [1, 1]}),
    ],
)
def test_devices_are_refused_without_reading(name: str, args: Dict[str, Any]):
    before = rss_kib()
    msg = tool_error(name, args)
    assert "character device" in msg
    assert rss_kib() - before < 100 * 1024


def test_proc_files_read_correctly():
    r = call("fs.read", {"path": "/proc/self/status"})
    assert "Pid:" in r["content"] and r["eof"] is True
    r = call("fs.read", {"path": "/proc/self/status", "start_line": 2, "end_line": 2})
    assert r["content"].count("\n") == 1
    assert "Name:" in call("edit", {"command": "view", "path": "/proc/self/status"})["output"]
    r = call("search.file", {"search_term": "^Pid:", "file": "/proc/self/status"})
    assert r["total_matches"] == 1


# ---------------------------------------------------------------- huge files


@pytest.fixture
def sparse(tmp_path: Path) -> Path:
    """8 GiB of NULs on disk as a hole: no newline anywhere."""
    p = tmp_path / "sparse.bin"
    with open(p, "wb") as f:
        f.truncate(8 << 30)
    return p


def test_sparse_8gib_file_reads_are_bounded(sparse: Path):
    before = rss_kib()
    r = call("fs.read", {"path": str(sparse), "encoding": "base64"})
    assert (r["eof"], r["truncated"], r["length"]) == (False, True, 8 << 20)
    assert len(base64.b64decode(r["content"])) == 8 << 20
    r = call("fs.read", {"path": str(sparse), "start_line": 1, "end_line": 1})
    assert (r["truncated"], r["end_line"], r["eof"]) == (True, 1, False)
    for view in ({}, {"view_range": [1, 1]}):
        out = call("edit", dict(view, command="view", path=str(sparse)))["output"]
        assert out.endswith("</NOTE>\n") and "<response clipped>" in out
    assert "is larger than" in tool_error("edit", {"command": "str_replace", "path": str(sparse), "old_str": "a"})
    grown_mib = (rss_kib() - before) / 1024
    assert grown_mib < 512, f"RSS grew by {grown_mib:.0f} MiB"


def open_fds_on(path: Path) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                n += 1
        except OSError:
            pass
    return n


@pytest.mark.parametrize(
    "name,args",
    [
        ("fs.read", {"start_line": 2}),
        ("edit", {"command": "view", "view_range": [2, 3]}),
        ("search.file", {"search_term": "x"}),
    ],
)
def test_a_timed_out_scan_stops_and_closes_the_file(sparse: Path, name: str, args: Dict[str, Any]):
    key = "file" if name == "search.file" else "path"
    try:
        agent_runtime.call(name, dict(args, **{key: str(sparse)}), timeout=0.2)
    except (agent_runtime.ToolTimeout, ToolError, InvalidArguments):
        pass
    deadline = time.monotonic() + 60
    while open_fds_on(sparse) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds_on(sparse) == 0, "the abandoned call still holds the file"


def test_limits_and_offsets_beyond_what_the_os_takes(tmp_path: Path):
    f = tmp_path / "s.txt"
    f.write_text("hello")
    for off in (2**63, 2**64 - 1):
        r = call("fs.read", {"path": str(f), "offset": off})
        assert (r["content"], r["eof"]) == ("", True)
    e = invalid("fs.read", {"path": str(f), "limit": 2**40})
    assert e.path == "limit"


def test_huge_single_line_search(tmp_path: Path):
    f = tmp_path / "one-line.txt"
    f.write_bytes(b"z" * (17 << 20))
    assert "a line is longer than" in tool_error("search.file", {"search_term": "q", "file": str(f)})
    (tmp_path / "ok.txt").write_text("q\n")
    r = call("search.dir", {"search_term": "q", "dir": str(tmp_path)})
    assert r["total_files"] == 1


def test_catastrophic_and_invalid_patterns(tmp_path: Path):
    f = tmp_path / "a.txt"
    f.write_text("a" * 50_000 + "\n")
    assert call("search.file", {"search_term": "\\(a*\\)*b", "file": str(f)})["total_matches"] == 0
    assert call("search.file", {"search_term": "\\(a\\|aa\\)*$", "file": str(f)})["total_matches"] == 1
    for term in ("\\(a\\{1000\\}\\)\\{1000\\}", "[z-a]", "\\(", "x\\{2,1\\}", "[[:nope:]]"):
        assert invalid("search.file", {"search_term": term, "file": str(f)}).path == "search_term", term


# ---------------------------------------------------------------- data safety


FAILING_WRITE = textwrap.dedent(
    """
    import resource, sys
    import agent_runtime
    from agent_runtime import ToolError
    agent_runtime.register_builtin_tools(["fs", "edit"])
    path = sys.argv[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    for name, args in [
        ("edit", {"command": "str_replace", "path": path, "old_str": "MARK", "new_str": "MARKED"}),
        ("edit", {"command": "insert", "path": path, "insert_line": 0, "new_str": "top"}),
        ("fs.write", {"path": path, "content": "y" * (2 << 20)}),
        ("fs.write", {"path": path, "content": "y" * (2 << 20), "append": True}),
    ]:
        try:
            agent_runtime.call(name, args)
        except ToolError as e:
            print("FAILED", name, e)
        else:
            print("WROTE", name)
    try:
        agent_runtime.call("edit", {"command": "undo_edit", "path": path})
    except ToolError as e:
        print("UNDO", e)
    """
)


def test_a_failing_write_leaves_the_file_intact(tmp_path: Path):
    f = tmp_path / "big.py"
    data = ("x = 1\n" * 450_000 + "MARK\n").encode()
    assert len(data) > 2_600_000
    f.write_bytes(data)
    os.chmod(f, 0o640)
    p = subprocess.run([sys.executable, "-c", FAILING_WRITE, str(f)], check=False, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["FAILED"] * 4 + ["UNDO"], p.stdout
    assert "File too large" in lines[0]
    assert "No edit history found" in lines[-1], "a failed edit records no undo step"
    assert f.read_bytes() == data
    assert f.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["big.py"], "no temporary file is left behind"


def test_writes_keep_permissions_and_symlinks(tmp_path: Path):
    f = tmp_path / "tool.sh"
    f.write_text("echo old\n")
    os.chmod(f, 0o751)
    link = tmp_path / "link.sh"
    link.symlink_to("tool.sh")
    call("edit", {"command": "str_replace", "path": str(link), "old_str": "old", "new_str": "new"})
    call("fs.write", {"path": str(link), "content": "echo newer\n"})
    assert link.is_symlink() and f.read_text() == "echo newer\n"
    assert f.stat().st_mode & 0o7777 == 0o751


# ---------------------------------------------------------------- names and paths


def test_non_utf8_names_can_be_listed_and_read_back(tmp_path: Path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9-\xff.txt"
    with open(raw, "wb") as fh:
        fh.write(b"bytes name\n")
    (tmp_path / "plain.txt").write_text("plain")
    entries = call("fs.list", {"path": str(tmp_path)})["entries"]
    odd = [e for e in entries if "absolute_path_base64" in e]
    assert len(odd) == 1 and "\ufffd" in odd[0]["path"]
    assert [e["path"] for e in entries if "absolute_path_base64" not in e] == ["plain.txt"]
    assert base64.b64decode(odd[0]["absolute_path_base64"]) == raw
    r = call("fs.read", {"path_base64": odd[0]["absolute_path_base64"]})
    assert r["content"] == "bytes name\n"
    call("fs.write", {"path_base64": odd[0]["absolute_path_base64"], "content": "again", "append": True})
    with open(raw, "rb") as fh:
        assert fh.read() == b"bytes name\nagain"


@pytest.mark.parametrize(
    "name,args,field",
    [
        ("fs.read", {"path": ""}, "path"),
        ("fs.read", {"path": "a\x00b"}, "path"),
        ("fs.read", {}, "path"),
        ("fs.list", {"path_base64": "not base64!"}, "path_base64"),
        ("fs.write", {"path": "/tmp/x\x00", "content": ""}, "path"),
        ("edit", {"command": "view", "path": ""}, "path"),
        ("edit", {"command": "view", "path": "/tmp/\x00"}, "path"),
        ("search.file", {"search_term": "x", "file": "a\x00"}, "file"),
        ("search.dir", {"search_term": "x", "dir": "\x00"}, "dir"),
        ("search.find_file", {"file_name": "x", "dir": ""}, "dir"),
    ],
)
def test_empty_and_nul_paths_are_invalid_arguments(name: str, args: Dict[str, Any], field: str):
    assert invalid(name, args).path == field


def test_argument_messages_say_what_was_received(tmp_path: Path):
    f = tmp_path / "m.txt"
    f.write_text("a\nb\n")
    e = invalid("edit", {"command": "view", "path": str(f), "view_range": [5]})
    assert e.path == "view_range" and "got [5]" in str(e)
    e = invalid("edit", {"command": "view", "path": str(f), "view_range": [1, 2, 3]})
    assert "got [1,2,3]" in str(e)
    for big in (2**63, 2**64 - 1):
        e = invalid("edit", {"command": "insert", "path": str(f), "insert_line": big, "new_str": "x"})
        assert e.path == "insert_line"
        assert f"Invalid `insert_line` parameter: {big}. It should be within the range of lines of the file: [0, 3]" in str(e)


def test_directories_where_files_are_expected(tmp_path: Path):
    d = str(tmp_path)
    assert "it is a directory (use fs.list)" in tool_error("fs.read", {"path": d})
    assert "Is a directory" in tool_error("fs.write", {"path": d, "content": "x"})
    assert "only the `view` command can be used on directories" in tool_error("edit", {"command": "str_replace", "path": d, "old_str": "a"})
    assert tool_error("search.file", {"search_term": "x", "file": d}).endswith("Please provide a valid file name.")


def test_symlink_loops_end(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")
    (tmp_path / "self").symlink_to("self")
    (tmp_path / "sub" / "f.txt").write_text("needle\n")
    r = call("fs.list", {"path": str(tmp_path), "recursive": True})
    assert [e["path"] for e in r["entries"]] == ["self", "sub", "sub/f.txt", "sub/up"]
    assert call("search.dir", {"search_term": "needle", "dir": str(tmp_path)})["total_matches"] == 1
    assert call("search.find_file", {"file_name": "*.txt", "dir": str(tmp_path)})["total_matches"] == 1
    assert "os error 40" in tool_error("fs.read", {"path": str(tmp_path / "self")})


def test_binary_and_unicode_edge_cases(tmp_path: Path):
    f = tmp_path / "bin.dat"
    f.write_bytes(b"\x00\x01\xfe\xff" * 10)
    assert "not valid UTF-8" in tool_error("fs.read", {"path": str(f)})
    assert "binary file" in tool_error("search.file", {"search_term": "x", "file": str(f)})
    u = tmp_path / "u.txt"
    text = "e\u0301\u200d\U0001f600\u2028line\ufeff\n"
    call("fs.write", {"path": str(u), "content": text})
    assert call("fs.read", {"path": str(u)})["content"] == text
    r = call("fs.read", {"path": str(u), "limit": 6})
    assert r["content"] == "e\u0301\u200d" and r["length"] == 6
    out = call("edit", {"command": "str_replace", "path": str(u), "old_str": "\U0001f600", "new_str": "!"})["output"]
    assert "has been edited" in out and u.read_text() == text.replace("\U0001f600", "!")
