"""Mount other MCP servers' tools into a registry (the MCP host side)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

from . import _native

if TYPE_CHECKING:
    from ._native import McpMount, Registry


def mount_mcp(
    prefix: str,
    *,
    command: Optional[str] = None,
    args: Sequence[str] = (),
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str | os.PathLike[str]] = None,
    url: Optional[str] = None,
    headers: Optional[Mapping[str, str]] = None,
    registry: Optional[Registry] = None,
) -> McpMount:
    """Mount an MCP server: a stdio child process (``command``, ``args``, ``env``, ``cwd``) or a
    streamable-HTTP endpoint (``url``, ``headers``). Its tools appear in ``registry`` (default:
    the process-wide one) as ``PREFIX.tool`` — names unchanged for an empty prefix — with the
    schemas the server gives, and are called like any other tool. A name already taken is
    refused (``RegistrationError`` naming both). The returned handle has ``tools()``,
    ``reconnect()`` and ``close()``; the mount lives until ``close()``, reconnecting with
    backoff when the server exits or drops.
    """
    if isinstance(args, str):
        raise TypeError("mount_mcp: args must be a sequence of strings, not a string")
    return _native.mount_mcp(
        prefix,
        command=command,
        args=[str(a) for a in args],
        env=None if env is None else [(str(k), str(v)) for k, v in env.items()],
        cwd=None if cwd is None else os.fspath(cwd),
        url=url,
        headers=None if headers is None else [(str(k), str(v)) for k, v in headers.items()],
        registry=registry,
    )
