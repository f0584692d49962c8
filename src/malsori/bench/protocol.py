"""The worker protocol of ``malsori bench``, on the standard library alone.

A worker reads one JSON request a line on stdin and answers one JSON line each on the stdout it
started with; anything the engines print goes to stderr instead (the parent's log of that
configuration). A failure answers ``{"ok": false, "error": "..."}`` and the worker goes on
reading. Two workers speak it: ``malsori.bench.worker`` (malsori's environment) and
``malsori.bench.onnx_worker`` (run by path under another interpreter, whose environment has
none of malsori's dependencies), so this module imports nothing but the standard library.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def peak_rss_bytes(pid: int | None = None) -> int:
    """A process's peak resident memory: ``VmHWM`` of its own address space (this process's
    when ``pid`` is None; 0 for a process that has gone). ``ru_maxrss`` would not do: Linux
    carries the parent's peak over into a child at fork."""
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if pid is not None:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # elsewhere: kilobytes


def serve(handle: Handler, requests: IO[str], replies: IO[str]) -> None:
    """Answer every request line with ``handle``'s reply (or the error it raised)."""
    for line in requests:
        if not line.strip():
            continue
        try:
            reply = handle(json.loads(line))
        except Exception as e:  # reported to the parent, which marks the configuration failed
            traceback.print_exc(file=sys.stderr)
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
        replies.write(json.dumps(reply, ensure_ascii=False) + "\n")
        replies.flush()


def serve_stdio(handle: Handler) -> None:
    """``serve`` on this process's stdin and stdout, with stdout given over to the replies."""
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # engines that print (whisper.cpp, tqdm) write to stderr from now on
    sys.stdout = sys.stderr
    serve(handle, sys.stdin, replies)
    replies.close()
    sys.stderr.flush()
    os._exit(0)  # no interpreter teardown: engine threads can hold it up for many seconds
