"""Run one ffmpeg command to its end: progress, cancelling, and what went wrong.

ffmpeg writes ``-progress pipe:1`` blocks (``out_time_us=...``) on stdout and its log
on stderr; both are read through one selector, so neither pipe can fill and stall it,
and the loop wakes at least every ``_POLL_S`` to ask ``cancel()``. Nothing ffmpeg
produces passes through Python but these lines: the audio streams from file to file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.media.decode import MediaError, explain_ffmpeg_error, find_ffmpeg

_POLL_S = 0.2
_ERROR_LINES = 40
_PROGRESS_PERIOD_S = "0.25"

Progress = Callable[[float], None]
Cancel = Callable[[], bool]


class TranscodeCancelled(Exception):
    """``cancel()`` said stop: ffmpeg was killed and nothing it wrote is kept."""


@dataclass
class FfmpegOutput:
    """What a finished run printed that the caller may want."""

    errors: list[str] = field(default_factory=list)  # [error]/[fatal] lines, last 40
    json_blocks: list[dict[str, Any]] = field(default_factory=list)  # loudnorm's reports


def run_ffmpeg(
    args: Sequence[str],
    *,
    cwd: Path,
    name: str,
    duration_s: float | None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    strict: bool = True,
) -> FfmpegOutput:
    """Run ``ffmpeg <args>``; ``progress(fraction)`` as it goes (``duration_s`` known).

    Raises ``TranscodeCancelled`` when ``cancel()`` turns true, and ``MediaError`` (in
    words about ``name``, the source file) when ffmpeg fails or, with ``strict``,
    reports damaged input while carrying on.
    """
    command = [find_ffmpeg(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info"]
    command += ["-progress", "pipe:1", "-stats_period", _PROGRESS_PERIOD_S, *args]
    proc = subprocess.Popen(
        command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    log = _Log()
    try:
        _follow(proc, log, duration_s=duration_s, progress=progress, cancel=cancel)
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    if code != 0 or (strict and log.errors):
        raise MediaError(_explain(list(log.errors), name), ffmpeg=" | ".join(log.errors)[-500:])
    if progress is not None:
        progress(1.0)
    return FfmpegOutput(errors=list(log.errors), json_blocks=log.json_blocks)


# What ffmpeg says when it cannot write an output (rather than read the source).
_WRITE_FAILURES = ("Error opening output", "Failed to open file", "Error muxing", "muxer")


def _explain(errors: list[str], name: str) -> str:
    text = "\n".join(errors)
    if "No space left on device" in text:
        return f"the disk is full: the renditions of {name} could not be written"
    if any(marker in text for marker in _WRITE_FAILURES):
        reason = errors[-1].rsplit("] ", 1)[-1] if errors else "ffmpeg failed"
        return f"the renditions of {name} could not be written ({reason})"
    return explain_ffmpeg_error(errors, name=name)


def _follow(
    proc: subprocess.Popen[bytes],
    log: _Log,
    *,
    duration_s: float | None,
    progress: Progress | None,
    cancel: Cancel | None,
) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    partial = {proc.stdout.fileno(): b"", proc.stderr.fileno(): b""}
    stdout_fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        for fd in partial:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            if cancel is not None and cancel():
                proc.kill()
                raise TranscodeCancelled
            for key, _ in selector.select(timeout=_POLL_S):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fd)
                    lines = [partial[key.fd]] if partial[key.fd] else []
                else:
                    *lines, partial[key.fd] = (partial[key.fd] + data).split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").rstrip("\r")
                    if key.fd == stdout_fd:
                        _on_progress_line(line, duration_s, progress)
                    else:
                        log.add(line)


def _on_progress_line(line: str, duration_s: float | None, progress: Progress | None) -> None:
    if progress is None or not duration_s or not line.startswith("out_time_us="):
        return
    with contextlib.suppress(ValueError):  # "out_time_us=N/A" before the first packet
        done_s = int(line.partition("=")[2]) / 1e6
        progress(min(max(done_s / duration_s, 0.0), 0.999))  # 1.0 once ffmpeg has exited


_LEVEL = re.compile(r"^((?:\[[^\]]*@ 0x[0-9a-f]+\] )*)\[(\w+)\] ?(.*)$")


class _Log:
    """The [error] lines (for the message) and JSON blocks (loudnorm prints one after
    a line of its own: ``[Parsed_loudnorm_0 @ 0x..] [info]``, then ``{`` ... ``}``)."""

    def __init__(self) -> None:
        self.errors: deque[str] = deque(maxlen=_ERROR_LINES)
        self.json_blocks: list[dict[str, Any]] = []
        self._json: list[str] | None = None

    def add(self, line: str) -> None:
        if self._json is not None:
            self._json.append(line)
            if line.strip() == "}":
                with contextlib.suppress(ValueError):
                    self.json_blocks.append(json.loads("\n".join(self._json)))
                self._json = None
            return
        match = _LEVEL.match(line)
        if match is None:
            if line.strip() == "{":
                self._json = [line]
            return
        prefix, level, text = match.groups()
        if level in ("error", "fatal"):
            self.errors.append(prefix + text)  # "[flac @ 0x..] invalid residual"
