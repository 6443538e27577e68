"""A 3-hour rehearsal (48 kHz stereo WAV, 2 GB, generated here) goes through the whole
media chain — probe, analyze, transcode, as the worker runs them — with the worker's
peak memory under 500 MB: audio is streamed through ffmpeg in chunks, never held whole.

It takes a few minutes of CPU (bench/RESULTS.md has the figures); the file is made by
repeating half a minute of a band-like signal, so writing it costs seconds, not minutes.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tests import media_fixtures as mf

ROOT = Path(__file__).resolve().parents[2]
HOURS = float(os.environ.get("BACKLINE_LONG_RECORDING_HOURS", "3"))
LIMIT_MB = 500


def repeated_rehearsal(seconds: float, sample_rate: int = 48000) -> Iterator[np.ndarray]:
    pattern = list(mf.rehearsal_blocks(30, sample_rate=sample_rate, block_seconds=10))
    blocks = round(seconds / 10)
    return itertools.islice(itertools.cycle(pattern), blocks)


def test_a_three_hour_rehearsal_is_processed_in_under_500_mb(tmp_path: Path) -> None:
    path = mf.write_wav_blocks(
        tmp_path / "rehearsal.wav", repeated_rehearsal(HOURS * 3600), 48000, 2
    )
    (tmp_path / "data").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "tests.media.long_recording", str(path), str(tmp_path / "data")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "READY", report
    assert report["jobs"] == {
        "PROBE": "SUCCEEDED",
        "ANALYZE": "SUCCEEDED",
        "TRANSCODE": "SUCCEEDED",
    }
    assert report["duration_ms"] == round(HOURS * 3600 * 1000)
    assert report["bpm"] is not None and abs(report["bpm"] - 120) <= 1
    assert report["renditions"] == ["hls", "mp3"]
    print(json.dumps(report))  # the figures, for whoever runs with -s
    assert report["peak_kb"] / 1024 < LIMIT_MB, report
    assert report["largest_child_kb"] / 1024 < LIMIT_MB, report
