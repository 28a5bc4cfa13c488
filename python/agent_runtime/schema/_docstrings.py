"""Tool and parameter descriptions from docstrings (Google, NumPy and Sphinx field lists)."""

import dataclasses
import enum
import inspect
import re
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple


class _DocInfo(NamedTuple):
    description: str
    params: Dict[str, str]
    returns: Optional[str]


_PARAM_HEADERS = frozenset(
    [
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "kwargs",
        "other parameters",
        "attributes",
    ]
)
_RETURN_HEADERS = frozenset(["returns", "return"])
_GOOGLE_HEADER_RE = re.compile(r"^([A-Za-z][A-Za-z ]*?)\s*:\s*(.*)$")
_GOOGLE_ENTRY_RE = re.compile(r"^(\*{0,2}[A-Za-z_]\w*)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_RETURN_TYPE_RE = re.compile(
    r"^([A-Za-z_][\w.]*(?:\[.*\])?(?:\s*\|\s*[A-Za-z_][\w.]*(?:\[.*\])?)*)\s*:\s+(.+)$"
)
_DASHES_RE = re.compile(r"^\s*-{3,}\s*$")
_SPHINX_PARAM_RE = re.compile(r"^:(?:param|parameter|arg|argument|key|keyword)\s+([^:]+?)\s*:\s*(.*)$")
_SPHINX_RETURN_RE = re.compile(r"^:returns?\s*:\s*(.*)$")
_SPHINX_OTHER_RE = re.compile(
    r"^:(?:type\s+[^:]+|rtype|raises?(?:\s+[^:]+)?|except(?:ion)?(?:\s+[^:]+)?"
    r"|var\s+[^:]+|ivar\s+[^:]+|cvar\s+[^:]+)\s*:"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join_text(lines: List[str]) -> str:
    return " ".join(part.strip() for part in lines if part.strip())


def _is_numpy_header(lines: List[str], i: int) -> bool:
    return (
        i + 1 < len(lines)
        and bool(lines[i].strip())
        and not _DASHES_RE.match(lines[i])
        and bool(_DASHES_RE.match(lines[i + 1]))
    )


def _entry_lines(body: List[str]) -> Iterator[Tuple[bool, str]]:
    """The non-blank lines of a section body, each with whether it can start an entry: it is
    indented no deeper than the first (deeper lines continue the entry above)."""
    base: Optional[int] = None
    for line in body:
        if not line.strip():
            continue
        if base is None:
            base = _indent(line)
        yield _indent(line) <= base, line


def _parse_google_params(body: List[str], params: Dict[str, str]) -> None:
    name: Optional[str] = None
    desc: List[str] = []

    def flush() -> None:
        if name is not None and name not in params:
            text = _join_text(desc)
            if text:
                params[name] = text

    for starts_entry, line in _entry_lines(body):
        if starts_entry:
            match = _GOOGLE_ENTRY_RE.match(line.strip())
            if match:
                flush()
                name = match.group(1).lstrip("*")
                desc = [match.group(3)]
                continue
        if name is not None:
            desc.append(line)
    flush()


def _parse_numpy_params(body: List[str], params: Dict[str, str]) -> None:
    names: List[str] = []
    desc: List[str] = []

    def flush() -> None:
        text = _join_text(desc)
        if text:
            for n in names:
                if n.isidentifier() and n not in params:
                    params[n] = text

    for starts_entry, line in _entry_lines(body):
        if starts_entry:
            flush()
            head = line.strip()
            name_part = head.split(":", 1)[0] if ":" in head else head
            names = [n.strip().lstrip("*") for n in name_part.split(",")]
            desc = []
        else:
            desc.append(line)
    flush()


def _numpy_returns(body: List[str]) -> str:
    heads: List[str] = []
    descs: List[str] = []
    for starts_entry, line in _entry_lines(body):
        (heads if starts_entry else descs).append(line)
    return _join_text(descs) or _join_text(heads)


def _google_returns(body: List[str]) -> str:
    lines = [line.strip() for line in body if line.strip()]
    if lines:
        match = _RETURN_TYPE_RE.match(lines[0])
        if match:
            lines[0] = match.group(2)
    return _join_text(lines)


def _parse_docstring(doc: Optional[str]) -> _DocInfo:
    """Split a docstring into description, per-parameter texts and the Returns text."""
    if not doc or not doc.strip():
        return _DocInfo("", {}, None)
    lines = inspect.cleandoc(doc).splitlines()
    kept: List[str] = []
    params: Dict[str, str] = {}
    returns: List[str] = []
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        stripped = line.strip()
        indent = _indent(line)
        # NumPy style: "Parameters\n----------"
        if _is_numpy_header(lines, i) and stripped.lower() in (_PARAM_HEADERS | _RETURN_HEADERS):
            j = i + 2
            body: List[str] = []
            while j < n and not _is_numpy_header(lines, j):
                body.append(lines[j])
                j += 1
            if stripped.lower() in _PARAM_HEADERS:
                _parse_numpy_params(body, params)
            else:
                text = _numpy_returns(body)
                if text:
                    returns.append(text)
            i = j
            continue
        # Google style: "Args:" / "Returns:" (inline text allowed for Returns)
        match = _GOOGLE_HEADER_RE.match(stripped)
        if match:
            header = match.group(1).lower()
            inline = match.group(2).strip()
            is_params = header in _PARAM_HEADERS and not inline
            is_returns = header in _RETURN_HEADERS
            if is_params or is_returns:
                j = i + 1
                body = [inline] if inline else []
                while j < n and (not lines[j].strip() or _indent(lines[j]) > indent):
                    body.append(lines[j])
                    j += 1
                if is_params:
                    _parse_google_params(body, params)
                else:
                    text = _google_returns(body)
                    if text:
                        returns.append(text)
                i = j
                continue
        # Sphinx / reST field lists: ":param x: text", ":returns: text", ":rtype: int"
        if stripped.startswith(":"):
            pmatch = _SPHINX_PARAM_RE.match(stripped)
            rmatch = _SPHINX_RETURN_RE.match(stripped)
            if pmatch or rmatch or _SPHINX_OTHER_RE.match(stripped):
                j = i + 1
                cont: List[str] = []
                while j < n and lines[j].strip() and _indent(lines[j]) > indent:
                    cont.append(lines[j])
                    j += 1
                if pmatch:
                    pname = pmatch.group(1).split()[-1].lstrip("*")
                    text = _join_text([pmatch.group(2)] + cont)
                    if text and pname not in params:
                        params[pname] = text
                elif rmatch:
                    text = _join_text([rmatch.group(1)] + cont)
                    if text:
                        returns.append(text)
                i = j
                continue
        kept.append(line)
        i += 1
    description = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return _DocInfo(description, params, " ".join(returns) if returns else None)


def _own_class_docstring(cls: type) -> Optional[str]:
    """The class's own docstring, ignoring the ones generated by ``@dataclass`` and ``Enum``."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return None
    if dataclasses.is_dataclass(cls) and doc.startswith(cls.__name__ + "("):
        return None  # generated by @dataclass
    if issubclass(cls, enum.Enum) and doc.strip() == "An enumeration.":
        return None  # generated by Enum on 3.8 - 3.10
    return doc


def _class_doc(cls: type) -> _DocInfo:
    """Docstring info of a dataclass / TypedDict / Enum."""
    return _parse_docstring(_own_class_docstring(cls))
