"""Progress a person can follow: a tqdm bar on a terminal; on a log file or a pipe, where a bar would be either
silent (tqdm turns itself off) or a smear of carriage returns, a line now and then through the
``zskd_plugin.progress`` logger with what is done and an estimate of the time left.

The command line shows that logger's lines even when the rest of the library is held at WARNING.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

from tqdm.auto import tqdm

__all__ = ["PROGRESS_LOGGER", "ProgressBar", "format_duration"]

PROGRESS_LOGGER = "zskd_plugin.progress"
_logger = logging.getLogger(PROGRESS_LOGGER)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressBar:
    """``update(n)`` and ``set_postfix(**values)`` like tqdm's; a bar on a terminal, else a log line at every
    ``every`` (a fraction of ``total``) of the work and at the end.

    Args:
        total: units of work.
        desc: what is being done (``Data Impressions``).
        unit: the unit (``DI``).
        enabled: False shows nothing at all.
        every: fraction of the work between two log lines.
    """

    def __init__(self, total: int, desc: str, unit: str, enabled: bool = True, every: float = 0.1) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done, self._postfix = 0, ""
        self._start = time.monotonic()
        self._next = every * total
        self._every = every * total
        self._bar = None
        self._log = False
        if enabled and sys.stderr.isatty():
            self._bar = tqdm(total=total, desc=desc, unit=unit)
        elif enabled:
            self._log = True

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._log and (self.done >= self._next or self.done >= self.total):
            while self._next <= self.done:
                self._next += max(self._every, 1)
            elapsed = time.monotonic() - self._start
            left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            _logger.info(
                "%s: %d/%d %s (%.0f%%), %s, about %s left%s",
                self.desc,
                self.done,
                self.total,
                self.unit,
                100.0 * self.done / max(self.total, 1),
                format_duration(elapsed),
                format_duration(left),
                self._postfix,
            )

    def set_postfix(self, **values: Any) -> None:
        if self._bar is not None:
            self._bar.set_postfix(**values)
        self._postfix = "".join(f", {k} {v}" for k, v in values.items())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
