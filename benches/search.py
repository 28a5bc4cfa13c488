"""Search area: the built-in ``search.*`` tools against the commands SWE-agent's originals run,
on a large real tree (the installed CPython standard library, site-packages included).

- ``search.dir`` vs ``grep -rIc`` (``search_dir`` greps every file, counting matching lines per
  file; ``-I`` skips binary files), checked to produce the same per-file counts first;
- ``search.file`` vs ``grep -n`` on the largest ``.py`` file of the tree;
- ``search.find_file`` vs ``find DIR -type f -name PATTERN``.

The tree is ``$AGENT_RUNTIME_BENCH_TREE`` or the running interpreter's stdlib; ``--quick`` uses
its ``email`` package instead. The commands run with ``LC_ALL=C`` (byte semantics, as in
SWE-agent's containers); their times include starting the process, as the originals pay it too.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path
from typing import Any, Dict, List

import agent_runtime

from .common import Case, Row, measure

AREA = "search"
TERM = "import"
ENV = dict(os.environ, LC_ALL="C")


def _tree(quick: bool) -> Path:
    root = Path(os.environ.get("AGENT_RUNTIME_BENCH_TREE") or sysconfig.get_paths()["stdlib"]).resolve()
    return root / "email" if quick else root


def _grep_counts(tree: Path) -> Dict[str, int]:
    p = subprocess.run(["grep", "-rIc", "--", TERM, str(tree)], check=False, capture_output=True, text=True, env=ENV, errors="replace")
    counts = {}
    for line in p.stdout.splitlines():
        path, _, n = line.rpartition(":")
        # search.dir skips hidden files and directories like search_dir's `! -path '*/.*'`.
        if n.isdigit() and int(n) and "/." not in path[len(str(tree)) :]:
            counts[path] = int(n)
    return counts


def _check_same_counts(tree: Path) -> int:
    r = agent_runtime.call("search.dir", {"search_term": TERM, "dir": str(tree), "gitignore": False})
    expected = _grep_counts(tree)
    if r["total_files"] != len(expected) or r["total_matches"] != sum(expected.values()):
        raise AssertionError(
            f"search.dir found {r['total_matches']} matches in {r['total_files']} files, "
            f"grep -rIc {sum(expected.values())} in {len(expected)}"
        )
    if not r["too_many"] and {f["path"]: f["matches"] for f in r["files"]} != expected:
        raise AssertionError("search.dir and grep -rIc disagree on per-file counts")
    return int(r["total_matches"])


def _largest_py(tree: Path) -> Path:
    return max(tree.rglob("*.py"), key=lambda p: p.stat().st_size)


def run(quick: bool) -> List[Row]:
    agent_runtime.register_builtin_tools(["search"])
    tree = _tree(quick)
    matches = _check_same_counts(tree)
    n_files = sum(1 for _ in tree.rglob("*"))
    big = _largest_py(tree)
    ns: Dict[str, Any] = {
        "call": agent_runtime.call,
        "run": subprocess.run,
        "DEVNULL": subprocess.DEVNULL,
        "ENV": ENV,
        "DIR_ARGS": {"search_term": TERM, "dir": str(tree), "gitignore": False},
        "FILE_ARGS": {"search_term": TERM, "file": str(big)},
        "FIND_ARGS": {"file_name": "*.py", "dir": str(tree), "gitignore": False},
        "GREP_DIR": ["grep", "-rIc", "--", TERM, str(tree)],
        "GREP_FILE": ["grep", "-n", "--", TERM, str(big)],
        "FIND": ["find", str(tree), "-type", "f", "-name", "*.py"],
    }
    m = measure(
        [
            Case("grep_dir", "run(GREP_DIR, stdout=DEVNULL, env=ENV)", ns),
            Case("dir", 'call("search.dir", DIR_ARGS)', ns),
            Case("grep_file", "run(GREP_FILE, stdout=DEVNULL, env=ENV)", ns),
            Case("file", 'call("search.file", FILE_ARGS)', ns),
            Case("find", "run(FIND, stdout=DEVNULL, env=ENV)", ns),
            Case("find_file", 'call("search.find_file", FIND_ARGS)', ns),
        ],
        quick,
    )

    def row(key: str, name: str, **kw: Any) -> Row:
        return m[key].row(AREA, name, **kw)

    where = f"{tree} ({n_files} entries)"
    base_dir = row("grep_dir", f'grep -rIc "{TERM}" DIR (subprocess)', tag="G", note=where)
    base_file = row("grep_file", f'grep -n "{TERM}" FILE (subprocess)', tag="N", note=f"{big} ({big.stat().st_size // 1024} KiB)")
    base_find = row("find", "find DIR -type f -name '*.py' (subprocess)", tag="F")
    return [
        base_dir,
        row("dir", f'search.dir "{TERM}" \u2014 same counts as grep ({matches} lines)').relate(base_dir),
        base_file,
        row("file", f'search.file "{TERM}" on the same file').relate(base_file),
        base_find,
        row("find_file", "search.find_file '*.py'").relate(base_find),
    ]
