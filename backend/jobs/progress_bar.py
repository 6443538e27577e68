"""A job's progress on a terminal, drawn from the snapshots its events carry
(``jobs.service.snapshot``): redrawn in place when the stream is a terminal, a line every
few seconds when it is a log or a pipe. Knows nothing of where the snapshots come from."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any, TextIO

BAR_WIDTH = 24
MIN_BAR_WIDTH = 8


class ProgressBar:
    def __init__(
        self,
        stream: TextIO,
        *,
        label: str,
        tty: bool | None = None,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.label = label
        self.tty = _isatty(stream) if tty is None else tty
        self.every = every  # seconds between lines when not on a terminal
        self._clock = clock
        self._started: tuple[float, int] | None = None  # (when, processed) once running
        # When the last line was written, and the stage it showed (status, total known).
        self._last_line: tuple[float, tuple[str, bool]] | None = None
        self._last_text = ""
        self._open_line = False  # a terminal line drawn and not yet ended

    def update(self, snapshot: dict[str, Any]) -> None:
        now = self._clock()
        if self._started is None and snapshot["status"] != "QUEUED":
            self._started = (now, snapshot.get("processed") or 0)
        if self.tty:
            width = max(shutil.get_terminal_size().columns - 1, 20)
            text = self.render(snapshot, now=now, width=width)
            self.stream.write("\r" + text + "\x1b[K")
            self._open_line = True
            if snapshot.get("finished"):
                self.close()
            self._last_text = text
        else:
            text = self.render(snapshot, now=now)
            stage = (snapshot["status"], snapshot.get("total") is not None)
            due = (
                self._last_line is None
                or self._last_line[1] != stage
                or now - self._last_line[0] >= self.every
                or snapshot.get("finished")
            )
            if due and text != self._last_text:
                self.stream.write(text + "\n")
                self._last_line = (now, stage)
                self._last_text = text
        self.stream.flush()

    def close(self) -> None:
        """End the line being redrawn, so what follows starts on its own."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False

    def render(
        self, snapshot: dict[str, Any], *, now: float | None = None, width: int | None = None
    ) -> str:
        """The line for a snapshot; within ``width`` characters when given (the bar
        shrinks, then the estimate and the rate go)."""
        now = self._clock() if now is None else now
        status = snapshot["status"]
        processed = snapshot.get("processed") or 0
        total = snapshot.get("total")
        if status == "QUEUED":
            return _fit(f"{self.label}: queued, waiting for a worker", width)
        if total is None:
            return _fit(f"{self.label}: listing files", width)
        fraction = min(1.0, processed / total) if total else 1.0
        counts = ", ".join(
            f"{snapshot.get(name) or 0} {name}"
            for name in ("added", "updated", "skipped", "failed")
        )
        head = f"{processed}/{total} {fraction:4.0%}"
        extras: list[str] = []
        rate = self._rate(processed, now)
        if rate is not None:
            extras.append(f"{rate:.1f} files/s")
        if snapshot.get("finished"):
            extras.append(status.lower())
        elif rate and total > processed:
            extras.append(f"~{_duration((total - processed) / rate)} left")
        while True:
            rest = "  ".join([head, counts, *extras])
            if width is None:
                bar_width = BAR_WIDTH
            else:
                bar_width = min(BAR_WIDTH, width - len(self.label) - len(rest) - 5)
            if width is None or bar_width >= MIN_BAR_WIDTH or not extras:
                break
            extras.pop(0 if snapshot.get("finished") else -1)  # the estimate, then the rate
        bar_width = max(bar_width, MIN_BAR_WIDTH)
        filled = round(fraction * bar_width)
        return _fit(f"{self.label} [{'#' * filled}{'-' * (bar_width - filled)}]  {rest}", width)

    def _rate(self, processed: int, now: float) -> float | None:
        if self._started is None:
            return None
        since, first = self._started
        elapsed = now - since
        if elapsed < 0.5:
            return None
        return max(processed - first, 0) / elapsed


def _fit(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: max(width, 1)]


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
