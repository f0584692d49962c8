"""The malloc arena cap: each case runs in a fresh interpreter (the cap is process-wide)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from malsori import allocator

glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# Six threads each allocate while holding their first block, then glibc's malloc_stats() prints
# one "Arena N:" block per arena to stderr.
ARENAS_AFTER_THREADS = textwrap.dedent(
    """
    import ctypes, sys, threading
    from malsori.allocator import cap_malloc_arenas
    if sys.argv[1] == "cap":
        print(cap_malloc_arenas(), flush=True)
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    held, started = [], threading.Barrier(6)
    def work():
        started.wait()
        held.append(libc.malloc(1 << 16))
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads: t.start()
    for t in threads: t.join()
    libc.malloc_stats()
    """
)


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=environ,
        timeout=60, check=True,
    )  # fmt: skip


def _arenas(stderr: str) -> int:
    return sum(line.startswith("Arena ") for line in stderr.splitlines())


@glibc
def test_threads_share_two_arenas_once_capped():
    capped = _run(ARENAS_AFTER_THREADS, "cap")
    assert capped.stdout.split() == ["2"]
    assert 1 <= _arenas(capped.stderr) <= 2
    free = _run(ARENAS_AFTER_THREADS, "leave")
    assert _arenas(free.stderr) > 2  # glibc's default: an arena per thread, here


@glibc
def test_the_first_cap_stays_and_is_reported():
    out = _run("from malsori.allocator import cap_malloc_arenas as c; print(c(), c(3))")
    assert out.stdout.split() == ["2", "2"]


@glibc
def test_malloc_arena_max_in_the_environment_is_left_to_glibc():
    code = "from malsori.allocator import cap_malloc_arenas as c; print(c())"
    out = _run(code, env={"MALLOC_ARENA_MAX": "4"})
    assert out.stdout.split() == ["None"]


@glibc
def test_loading_a_model_caps_the_arenas():
    code = textwrap.dedent(
        """
        import malsori
        from malsori import allocator
        assert allocator._capped is None
        malsori.load_model("base", threads=1)
        print(allocator._capped)
        """
    )
    assert _run(code).stdout.split() == ["2"]


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        allocator.cap_malloc_arenas(0)
