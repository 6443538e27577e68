"""Playable renditions of a recording: HLS Opus, an MP3 fallback, a normalised HLS.

``transcode(source, output_dir)`` runs ffmpeg, which streams from file to file (memory
stays flat for a 3-hour WAV), and decodes the source once for all outputs:

    pass 1 (one ffmpeg):  source ─┬─ libopus 160k ─ HLS fMP4 ── hls/
                                  ├─ LAME V2 ──────────────── fallback.mp3
                                  └─ loudnorm, measuring ──── (JSON report)
    pass 2 (normalized=True):  source ─ loudnorm linear ─ libopus ─ normalized/

Pass 2 exists only for the normalised rendition, which needs pass 1's measurement; a
caller that has one already (``measured=``) saves that branch of pass 1.

Everything is written into a hidden folder inside ``output_dir`` and moved into place
when ffmpeg has succeeded: a failure or a cancel leaves ``output_dir`` as it was.
See outputs.py for the file layout and loudnorm.py for the loudness target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backend.media.decode import MediaError
from backend.media.probe import ProbeResult, probe
from backend.media.transcode import loudnorm, outputs
from backend.media.transcode.ffmpeg import Cancel, Progress, TranscodeCancelled, run_ffmpeg
from backend.media.transcode.loudnorm import LoudnessMeasurement, LoudnessTarget

__all__ = [
    "LoudnessMeasurement",
    "LoudnessTarget",
    "MediaError",
    "TranscodeCancelled",
    "TranscodeResult",
    "transcode",
]

# Rough CPU cost of each output per second of audio, relative to the HLS Opus encode:
# how much of the progress bar each pass takes.
_COST = {"hls": 1.0, "mp3": 0.7, "measure": 2.0, "normalized": 3.0}


@dataclass(frozen=True)
class TranscodeResult:
    output_dir: Path
    hls_playlist: Path | None  # output_dir/hls/index.m3u8
    mp3: Path | None  # output_dir/fallback.mp3
    normalized_playlist: Path | None  # output_dir/normalized/index.m3u8
    loudness: LoudnessMeasurement | None  # the source's, from pass 1 (or as given)
    # How the normalised rendition was made: "linear" (one gain), "dynamic" (ffmpeg's
    # fallback when one gain would clip), "none" (silence: copied as it is).
    normalization: str | None
    files: tuple[Path, ...]  # everything written, relative to output_dir


def transcode(
    source: str | Path,
    output_dir: str | Path,
    *,
    name: str | None = None,
    hls: bool = True,
    mp3: bool = True,
    normalized: bool = False,
    target: LoudnessTarget = loudnorm.DEFAULT_TARGET,
    measured: LoudnessMeasurement | None = None,
    probed: ProbeResult | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    strict: bool = True,
) -> TranscodeResult:
    """Write the asked renditions of ``source`` into ``output_dir``.

    ``name``: the file's name as people know it (the upload's, not a scratch copy's),
    for error messages; the source's own name by default.
    ``probed``: the source's probe, if the caller has it (its duration drives
    ``progress``, its rate and channels the output formats); else a quick probe runs.
    ``progress(fraction)`` is called from 0 to 1.0; ``cancel()`` is asked a few times
    a second (keep it cheap) and, once true, ffmpeg is killed, nothing is kept and
    ``TranscodeCancelled`` is raised. Raises ``MediaError`` when the source cannot be
    transcoded; ``strict=False`` carries on through damaged data as ffmpeg does.
    """
    if not (hls or mp3 or normalized):
        raise ValueError("ask for at least one rendition")
    source, output_dir = Path(source), Path(output_dir)
    name = name or source.name
    info = probed or probe(source, verify=False, name=name)
    duration_s = info.duration_ms / 1000
    measure = normalized and measured is None
    first = [name for name, wanted in (("hls", hls), ("mp3", mp3), ("measure", measure)) if wanted]
    weights = [sum(_COST[name] for name in first)] if first else []
    if normalized:
        weights.append(_COST["normalized"])
    parts = _ProgressParts(progress, weights)

    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".transcode-", dir=output_dir))
    try:
        args = ["-i", f"file:{source.resolve()}"]
        # Output paths are relative to the work folder, ffmpeg's working directory.
        if hls:
            (work / outputs.HLS_DIR).mkdir()
            args += outputs.hls_args(Path(outputs.HLS_DIR), channels=info.channels)
        if mp3:
            args += outputs.mp3_args(
                Path(outputs.MP3_FILE), sample_rate=info.sample_rate, channels=info.channels
            )
        if measure:
            args += outputs.measure_args(loudnorm.measure_filter(target))
        normalization = None
        if first:
            done = run_ffmpeg(
                args,
                cwd=work,
                name=name,
                duration_s=duration_s,
                progress=parts.part(0),
                cancel=cancel,
                strict=strict,
            )
            if measure:
                measured = _measurement(done.json_blocks, name)
        if normalized:
            assert measured is not None
            normalization = _normalize(
                source,
                work,
                name,
                info,
                target=target,
                measured=measured,
                progress=parts.part(len(weights) - 1),
                cancel=cancel,
                strict=strict,
            )
        files = tuple(sorted(path.relative_to(work) for path in work.rglob("*") if path.is_file()))
        _move_into(work, output_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                output_dir.rmdir()  # only if still empty
        raise
    return TranscodeResult(
        output_dir=output_dir,
        hls_playlist=output_dir / outputs.HLS_DIR / outputs.PLAYLIST if hls else None,
        mp3=output_dir / outputs.MP3_FILE if mp3 else None,
        normalized_playlist=(
            output_dir / outputs.NORMALIZED_DIR / outputs.PLAYLIST if normalized else None
        ),
        loudness=measured,
        normalization=normalization,
        files=files,
    )


def _normalize(
    source: Path,
    work: Path,
    name: str,
    info: ProbeResult,
    *,
    target: LoudnessTarget,
    measured: LoudnessMeasurement,
    progress: Progress | None,
    cancel: Cancel | None,
    strict: bool,
) -> str:
    """Pass 2: the HLS rendition through loudnorm with pass 1's figures."""
    (work / outputs.NORMALIZED_DIR).mkdir()
    # Silence has no loudness to bring to a target (loudnorm would amplify noise by
    # 50 dB or more): it is encoded as it is.
    audio_filter = None if measured.is_silent else loudnorm.apply_filter(target, measured)
    args = ["-i", f"file:{source.resolve()}"]
    args += outputs.hls_args(
        Path(outputs.NORMALIZED_DIR), channels=info.channels, audio_filter=audio_filter
    )
    done = run_ffmpeg(
        args,
        cwd=work,
        name=name,
        duration_s=info.duration_ms / 1000,
        progress=progress,
        cancel=cancel,
        strict=strict,
    )
    if audio_filter is None:
        return "none"
    report = done.json_blocks[-1] if done.json_blocks else {}
    return str(report.get("normalization_type", "linear"))


def _measurement(blocks: list[dict[str, object]], name: str) -> LoudnessMeasurement:
    for block in reversed(blocks):
        if "input_i" in block:
            return loudnorm.parse_measurement(block)
    raise MediaError(f"could not measure the loudness of {name} (ffmpeg printed no report)")


def _move_into(work: Path, output_dir: Path) -> None:
    """Each finished rendition replaces the one before it, if any."""
    for entry in sorted(work.iterdir()):
        target = output_dir / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(entry, target)
    work.rmdir()


class _ProgressParts:
    """One 0..1 bar over sequential ffmpeg passes, each taking its share by weight."""

    def __init__(self, progress: Progress | None, weights: list[float]) -> None:
        self._progress = progress
        total = sum(weights) or 1.0
        self._starts = [sum(weights[:i]) / total for i in range(len(weights))]
        self._sizes = [weight / total for weight in weights]
        self._last = 0.0

    def part(self, index: int) -> Progress | None:
        if self._progress is None:
            return None
        start, size = self._starts[index], self._sizes[index]
        last = index == len(self._sizes) - 1

        def report(fraction: float) -> None:
            value = 1.0 if last and fraction >= 1.0 else start + size * fraction
            if value >= self._last:  # never backwards
                self._last = value
                assert self._progress is not None
                self._progress(min(value, 1.0))

        return report
