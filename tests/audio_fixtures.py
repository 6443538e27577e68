"""Small, real audio files for tests (sniffing, tags, scanning, the media pipeline).

``write_wav`` needs nothing but the standard library. ``write_encoded`` runs the ffmpeg
binary shipped in the imageio-ffmpeg wheel, once per distinct request: results are cached
in a temporary folder for the test session and copied to the caller's path, so a suite
that asks for the same one-second FLAC fifty times encodes it once.
"""

from __future__ import annotations

import array
import atexit
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from functools import cache
from pathlib import Path

import imageio_ffmpeg

# fmt -> (file suffix, ffmpeg output arguments). The suffix matters: ffmpeg picks
# the muxer's defaults from it, and the cached file keeps it for readers that look.
ENCODINGS: dict[str, tuple[str, list[str]]] = {
    "wav": (".wav", ["-c:a", "pcm_s16le", "-f", "wav"]),  # tags land in a RIFF INFO chunk
    "flac": (".flac", ["-c:a", "flac", "-f", "flac"]),
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"]),
    "m4a": (".m4a", ["-c:a", "aac", "-b:a", "128k", "-f", "ipod"]),  # brand 'M4A '
    "mp4": (".mp4", ["-c:a", "aac", "-b:a", "128k", "-f", "mp4"]),  # brand 'isom'
    "aac": (".aac", ["-c:a", "aac", "-b:a", "128k", "-f", "adts"]),  # raw ADTS, no tags
    "ogg": (".ogg", ["-c:a", "libvorbis", "-q:a", "3", "-f", "ogg"]),
    "opus": (".opus", ["-c:a", "libopus", "-b:a", "96k", "-f", "opus"]),
    "aiff": (".aiff", ["-c:a", "pcm_s16be", "-write_id3v2", "1", "-f", "aiff"]),
    "webm": (".webm", ["-c:a", "libopus", "-b:a", "96k", "-f", "webm"]),
}


def write_wav(
    path: str | Path,
    *,
    seconds: float = 1.0,
    sample_rate: int = 44100,
    channels: int = 1,
    tone_hz: float = 440.0,
) -> Path:
    """A 16-bit PCM WAV holding a sine tone at half scale, written with ``wave``."""
    frames = round(seconds * sample_rate)
    samples = array.array("h")
    for n in range(frames):
        value = round(16383 * math.sin(2 * math.pi * tone_hz * n / sample_rate))
        samples.extend([value] * channels)
    if sys.byteorder == "big":  # WAV is little-endian
        samples.byteswap()
    path = Path(path)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.tobytes())
    return path


def write_encoded(
    path: str | Path,
    fmt: str,
    *,
    seconds: float = 1.0,
    title: str | None = None,
    artist: str | None = None,
    date: str | None = None,
) -> Path:
    """A sine tone encoded as ``fmt`` (a key of ENCODINGS) with optional metadata tags.

    ``date`` is passed through as ffmpeg's ``date`` tag (ID3 TDRC, MP4 ©day, Vorbis DATE,
    RIFF ICRD), e.g. "2023-10-15" or "2023-10-15T20:30:00". The file is written to
    ``path`` whatever its suffix, so a test can give an audio file a misleading name.
    """
    cached = _encode(fmt, seconds, title, artist, date)
    path = Path(path)
    shutil.copyfile(cached, path)
    return path


@cache
def _encode(
    fmt: str, seconds: float, title: str | None, artist: str | None, date: str | None
) -> Path:
    suffix, output_args = ENCODINGS[fmt]
    folder = _cache_dir()
    source = folder / f"tone-{seconds}.wav"
    if not source.exists():
        write_wav(source, seconds=seconds, sample_rate=48000, channels=2)
    metadata: list[str] = []
    for key, value in (("title", title), ("artist", artist), ("date", date)):
        if value is not None:
            metadata += ["-metadata", f"{key}={value}"]
    handle, name = tempfile.mkstemp(prefix=f"{fmt}-", suffix=suffix, dir=folder)
    os.close(handle)
    target = Path(name)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error"]
    # -map_metadata -1: the tags asked for and nothing inherited from the source.
    command += ["-y", "-i", str(source), "-map_metadata", "-1", *metadata, *output_args, name]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return target


@cache
def _cache_dir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="backline-audio-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
