"""A live progress bar over audio time (with ETA) and files, on stderr.

The bar counts seconds of audio, because a 3-hour lecture and a 2-second voice note are not the
same amount of work; the files done, failed and left are shown beside it. The total audio length
is read from the file headers by a background thread, so a large job starts at once.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import MalsoriError

logger = logging.getLogger(__name__)


class Progress:
    """``advance`` after each file; ``close`` at the end. Does nothing when disabled."""

    def __init__(self, *, enabled: bool):
        self.enabled = enabled
        self.files_total = 0
        self.files_done = 0
        self.failed = 0
        self._bar: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self, sources: Sequence[Path]) -> None:
        """Show the bar for these files (only on a terminal, and only when enabled)."""
        self.files_total = len(sources)
        if not self.enabled or not sources or not sys.stderr.isatty():
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=0.0,
            unit="s",
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]{postfix}",
        )
        self._update_postfix()
        threading.Thread(target=self._measure, args=(list(sources),), daemon=True).start()

    def _measure(self, sources: list[Path]) -> None:
        from ..audio import probe

        for path in sources:
            if self._stop.is_set():
                return
            try:
                seconds = probe(path).declared_duration or 0.0
            except (MalsoriError, OSError):
                seconds = 0.0
            with self._lock:
                if self._bar is None:
                    return
                self._bar.total += seconds
                self._bar.refresh()

    def _update_postfix(self) -> None:
        failed = f", {self.failed} failed" if self.failed else ""
        self._bar.set_postfix_str(f"files {self.files_done}/{self.files_total}{failed}")

    def advance(self, seconds: float, *, failed: bool = False) -> None:
        with self._lock:
            self.files_done += 1
            self.failed += failed
            if self._bar is None:
                return
            self._bar.total = max(self._bar.total, self._bar.n + seconds)
            self._bar.update(seconds)
            self._update_postfix()

    @property
    def active(self) -> bool:
        return self._bar is not None

    def write(self, line: str) -> None:
        """A line above the bar (nothing when there is no bar)."""
        with self._lock:
            if self._bar is not None:
                self._bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
