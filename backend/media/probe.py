"""What a recording is: container, codec, rate, channels, length, tags and cover art.

There is no ffprobe on the machines Backline runs on (ffmpeg comes from the
imageio-ffmpeg wheel), so ``probe`` asks two readers and trusts each where it is best:

- ffmpeg, in one pass that decodes the first audio stream into nothing (``-f null``):
  the container and codec names, rate and channels from the header it prints, and the
  duration *measured* from the decoded samples (``-progress`` reports it). Measuring is
  what makes a browser's MediaRecorder WebM (no duration in its header) work, trims an
  MP3's encoder padding as every player does, and shows a truncated or corrupt file
  for what it is before anything else is built on it.
- mutagen, in-process, for the tags (through ``backend.library.audio.read_tags``, so the
  scanner and the probe read a file alike, RIFF INFO and Broadcast WAV ``bext`` included)
  and the cover art; ffmpeg's header fills in the tags of formats mutagen cannot read
  (WebM).

``probe(path, verify=False)`` skips the decode when the header states a duration: for a
quick look; the default measures.
"""

from __future__ import annotations

import base64
import contextlib
import re
import subprocess
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from backend.library.audio import Tags, parse_tag_datetime, read_tags
from backend.media.decode import MediaError, explain_ffmpeg_error, find_ffmpeg

__all__ = ["CoverArt", "MediaError", "ProbeResult", "ProbeTags", "probe"]

# A truncated file's decode ends this much short of the length its header states.
_TRUNCATION_SLACK_S = 0.5
_HEADER_LINES = 400  # what ffmpeg prints before decoding: streams, metadata
_ERROR_LINES = 40


@dataclass(frozen=True)
class CoverArt:
    data: bytes = field(repr=False)
    mime: str  # "image/jpeg", "image/png", ...


@dataclass(frozen=True)
class ProbeTags:
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    # A ``date`` when the tag names only the day, a UTC ``datetime`` when it names a time
    # too (a time without an offset is taken as UTC, as the scanner does).
    recorded: date | datetime | None = None


@dataclass(frozen=True)
class ProbeResult:
    duration_ms: int
    format: str  # "wav", "aiff", "flac", "mp3", "m4a", "aac", "ogg", "opus", "webm", ...
    codec: str  # ffmpeg's name: "pcm_s16le", "flac", "mp3", "aac", "vorbis", "opus", ...
    sample_rate: int  # what the decoder delivers (Opus: always 48000)
    channels: int
    bitrate: int | None  # bits per second, of the audio stream or else the whole file
    tags: ProbeTags = ProbeTags()
    cover: CoverArt | None = None


def probe(path: str | Path, *, verify: bool = True, name: str | None = None) -> ProbeResult:
    """Describe the audio file at ``path``; raises ``MediaError`` saying why it cannot.

    ``verify`` (the default) decodes the whole first audio stream to measure its length
    and to find damage. That costs ffmpeg's decode alone, per hour of audio about 1 s of
    CPU for WAV, 3 s for FLAC, 5 s for MP3, 12 s for Opus (bench/media.py).
    ``name``: the file's name in messages, if not its own (a scratch copy of an upload).
    """
    path = Path(path)
    name = name or path.name
    _check_is_file(path, name)
    header = _run_ffmpeg(path, decode=verify)
    if header.audio is None:
        raise MediaError(header.explain_failure(name))
    if not verify and header.duration_s is None:  # e.g. MediaRecorder's WebM: measure it
        header = _run_ffmpeg(path, decode=True)
        assert header.audio is not None
    if header.format in ("wav", "aiff"):
        # ffmpeg clamps a PCM file's length to its size; the chunk header tells what
        # was meant to be there (a copy or upload cut short).
        header.duration_s = _stated_pcm_seconds(path, header)
    duration_s = header.measured_s if header.measured_s is not None else header.duration_s
    if header.errors or header.returncode != 0:
        raise MediaError(_damage_message(header, name), ffmpeg=header.error_text[-500:])
    if duration_s is None or duration_s <= 0:
        raise MediaError(f"no audio in {name}: the stream holds no samples")
    if _ended_early(header):  # no error printed: the data simply stops
        raise MediaError(_truncated(header, name))
    fmt = _format_name(header)
    return ProbeResult(
        duration_ms=round(duration_s * 1000),
        format=fmt,
        codec=header.audio.codec,
        sample_rate=header.audio.sample_rate,
        channels=header.audio.channels,
        bitrate=_bitrate(path, header, duration_s),
        tags=_tags(read_tags(path, fmt), header.metadata),  # never raises
        cover=_cover(path),
    )


def _check_is_file(path: Path, name: str) -> None:
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "file not found"
        raise MediaError(f"{what}: {name}")
    if path.stat().st_size == 0:
        raise MediaError(f"empty file (0 bytes): {name}")


# --- ffmpeg's view -------------------------------------------------------------------


@dataclass(frozen=True)
class _Stream:
    codec: str
    sample_rate: int
    channels: int
    bitrate: int | None


@dataclass
class _Header:
    """What one ffmpeg run printed about the file, and what its decode measured."""

    returncode: int = 0
    demuxer: str | None = None  # "wav", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ...
    duration_s: float | None = None  # as the container states it
    bitrate: int | None = None  # the container's, bits/s
    audio: _Stream | None = None  # the first audio stream
    has_video: bool = False  # a real picture track, not an attached cover
    metadata: dict[str, str] = field(default_factory=dict)
    measured_s: float | None = None  # decoded length, when decoded
    errors: list[str] = field(default_factory=list)  # [error]/[fatal] lines, level cut off
    error_text: str = ""

    @property
    def format(self) -> str:
        return (self.demuxer or "").split(",")[0]

    def explain_failure(self, name: str) -> str:
        if self.demuxer is not None and self.audio is None:
            only = " (video only)" if self.has_video else ""
            return f"no audio stream in {name}{only}"
        return explain_ffmpeg_error(self.errors, name=name)


def _run_ffmpeg(path: Path, *, decode: bool) -> _Header:
    """One ffmpeg run: print the header and, with ``decode``, decode the first audio
    stream into ``-f null``, reporting progress on stderr too (one pipe to read)."""
    command = [find_ffmpeg(), "-nostdin", "-hide_banner", "-nostats"]
    # level+info tags every line with its level, so damage ([error]) can be told from
    # the header and from warnings such as "Guessed Channel Layout".
    command += ["-loglevel", "level+info", "-i", f"file:{path.resolve()}"]
    if decode:
        command += ["-map", "0:a:0", "-map_metadata", "-1", "-progress", "pipe:2", "-f", "null"]
        command += ["-"]
    header = _Header()
    lines: list[str] = []
    errors: deque[str] = deque(maxlen=_ERROR_LINES)
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stderr is not None
        try:
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("out_time_us="):
                    with contextlib.suppress(ValueError):
                        header.measured_s = int(line.partition("=")[2]) / 1e6
                    continue
                level, text = _split_level(line)
                if level in ("error", "fatal"):
                    errors.append(text)
                elif len(lines) < _HEADER_LINES and level == "info":
                    lines.append(text)
        except BaseException:
            proc.kill()
            raise
        header.returncode = proc.wait()
    _parse_header(lines, header)
    if not decode:
        header.returncode = 0  # "At least one output file must be specified" is expected
        errors = deque(line for line in errors if "output file" not in line)
        header.measured_s = None
    header.errors = list(errors)
    header.error_text = " | ".join(errors)
    return header


_LEVEL = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-f]+\] )*\[(\w+)\] ")


def _split_level(line: str) -> tuple[str | None, str]:
    """("error", "[flac @ 0x..] invalid residual") from "[flac @ 0x..] [error] invalid
    residual": the level goes, the component stays (decode.py names the codec by it)."""
    match = _LEVEL.match(line)
    if match is None:
        return None, line  # a continuation line, e.g. "To ignore this, add a trailing '?'"
    prefix = line[: match.start(1) - 1]
    return match.group(1), prefix + line[match.end() :]


_INPUT = re.compile(r"^Input #0, (.+?), from ")
_DURATION = re.compile(
    r"^\s*Duration: (N/A|(\d+):(\d\d):(\d\d(?:\.\d+)?))(?:.*bitrate: (\d+) kb/s)?"
)
_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: (Audio|Video): (\w+)(.*)$")
_RATE = re.compile(r", (\d+) Hz, ([^,]+)")
_KBPS = re.compile(r", (\d+) kb/s")
_META = re.compile(r"^ {4}(\S[^:]*?)\s*: (.*)$")
_STREAM_META = re.compile(r"^ {6}(\S[^:]*?)\s*: (.*)$")

# Channel counts of the layouts ffmpeg names (libavutil/channel_layout.c).
_LAYOUTS = {
    "mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "3.0(back)": 3, "4.0": 4, "quad": 4,
    "quad(side)": 4, "3.1": 4, "5.0": 5, "5.0(side)": 5, "4.1": 5, "5.1": 6, "5.1(side)": 6,
    "6.0": 6, "6.0(front)": 6, "hexagonal": 6, "6.1": 7, "6.1(back)": 7, "6.1(front)": 7,
    "7.0": 7, "7.0(front)": 7, "7.1": 8, "7.1(wide)": 8, "7.1(wide-side)": 8, "octagonal": 8,
    "downmix": 2,
}  # fmt: skip


def _parse_header(lines: list[str], header: _Header) -> None:
    # Tags sit in the file's "  Metadata:" block (before "Duration"), or for Ogg in the
    # audio stream's (indented two more); the file's win.
    section: str | None = None  # "file", "audio" or None
    stream_metadata: dict[str, str] = {}
    for line in lines:
        if line.startswith(("Stream mapping:", "Output #")):
            break  # what follows describes ffmpeg's output, not the file
        if match := _INPUT.match(line):
            header.demuxer = match.group(1)
            section = "file"
            continue
        if match := _DURATION.match(line):
            section = None
            if match.group(1) != "N/A":
                hours, minutes, seconds = match.group(2, 3, 4)
                header.duration_s = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            if match.group(5):
                header.bitrate = int(match.group(5)) * 1000
            continue
        if match := _STREAM.match(line):
            section = None
            kind, codec, rest = match.groups()
            if kind == "Video":
                header.has_video = header.has_video or "(attached pic)" not in rest
            elif header.audio is None:
                header.audio = _audio_stream(codec, rest)
                section = "audio"
            continue
        if section == "file" and (match := _META.match(line)):
            header.metadata.setdefault(match.group(1).lower(), match.group(2).strip())
        elif section == "audio" and (match := _STREAM_META.match(line)):
            stream_metadata.setdefault(match.group(1).lower(), match.group(2).strip())
    for key, value in stream_metadata.items():
        header.metadata.setdefault(key, value)


def _audio_stream(codec: str, rest: str) -> _Stream | None:
    match = _RATE.search(rest)
    if match is None:
        return None
    layout = match.group(2).strip()
    channels = _LAYOUTS.get(layout)
    if channels is None:  # "6 channels", or a layout this table does not know
        counted = re.match(r"(\d+) channels", layout)
        channels = int(counted.group(1)) if counted else 0
    kbps = _KBPS.search(rest)
    return _Stream(
        codec=codec,
        sample_rate=int(match.group(1)),
        channels=channels,
        bitrate=int(kbps.group(1)) * 1000 if kbps else None,
    )


# --- what it all means ---------------------------------------------------------------

_LABELS = {"flac": "FLAC", "mp3": "MP3", "aac": "AAC", "opus": "Opus", "vorbis": "Vorbis"}
# Containers whose header states the length; a decode that ends well before it means
# the file was cut (an interrupted copy or upload).
# Not MP3: without a Xing header ffmpeg estimates the length from the first bitrate.
# Not MP4: a fragment that starts later (an HLS segment) states its end time; a cut
# MP4 makes ffmpeg print an error anyway.
_HEADER_STATES_LENGTH = {"wav", "aiff", "flac", "matroska"}


def _ended_early(header: _Header) -> bool:
    return (
        header.measured_s is not None
        and header.duration_s is not None
        and header.format in _HEADER_STATES_LENGTH
        and header.measured_s < header.duration_s - _TRUNCATION_SLACK_S
    )


def _stated_pcm_seconds(path: Path, header: _Header) -> float | None:
    """The length a WAV's 'data' chunk (AIFF's COMM frame count) states; ffmpeg's own
    when the header leaves it open (a streaming writer's 0 or 0xFFFFFFFF, RF64)."""
    assert header.audio is not None
    with path.open("rb") as file:
        head = file.read(1 << 16)
    big_endian = header.format == "aiff"
    offset = 12
    byte_rate = 0
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        size = int.from_bytes(head[offset + 4 : offset + 8], "big" if big_endian else "little")
        body = head[offset + 8 : offset + 8 + min(size, 64)]
        if chunk_id == b"fmt " and len(body) >= 12:
            byte_rate = int.from_bytes(body[8:12], "little")
        elif chunk_id == b"data":
            if size in (0, 0xFFFFFFFF) or byte_rate == 0:
                return header.duration_s
            return size / byte_rate
        elif chunk_id == b"COMM" and len(body) >= 6:
            frames = int.from_bytes(body[2:6], "big")
            return frames / header.audio.sample_rate if frames else header.duration_s
        offset += 8 + size + (size & 1)
    return header.duration_s


def _truncated(header: _Header, name: str) -> str:
    assert header.audio is not None and header.duration_s is not None
    decoded_s = header.measured_s or 0.0
    label = _LABELS.get(header.audio.codec, "PCM" if header.audio.codec.startswith("pcm_") else "")
    what = f"truncated {label} stream" if label else "truncated audio stream"
    return f"{what} in {name}: only {decoded_s:.1f} s of its {header.duration_s:.1f} s decode"


def _damage_message(header: _Header, name: str) -> str:
    """An ended-early decode is a truncated file; anything else is corrupt."""
    if _ended_early(header):
        return _truncated(header, name)
    return explain_ffmpeg_error(header.errors, name=name, seconds=header.measured_s)


def _format_name(header: _Header) -> str:
    assert header.audio is not None
    fmt = header.format
    if fmt == "mov":  # "mov,mp4,m4a,3gp,3g2,mj2": one demuxer for the whole family
        return "mp4" if header.has_video else "m4a"
    if fmt == "ogg" and header.audio.codec == "opus":
        return "opus"
    if fmt == "matroska":  # "matroska,webm"; the codec tells what browsers write
        return "webm" if header.audio.codec in ("opus", "vorbis") else "mka"
    return fmt


def _bitrate(path: Path, header: _Header, duration_s: float) -> int | None:
    assert header.audio is not None
    if header.audio.bitrate:
        return header.audio.bitrate
    if header.bitrate:
        return header.bitrate
    return round(path.stat().st_size * 8 / duration_s)  # the whole file, headers and all


def _tags(read: Tags, metadata: dict[str, str]) -> ProbeTags:
    date_text = _ffmpeg_date(metadata)
    recorded: date | datetime | None = read.recorded_at
    if recorded is None and date_text:
        recorded = parse_tag_datetime(date_text)
    if recorded is not None and date_text and not _has_time(date_text):
        recorded = recorded.date()  # the tag names a day: keep it a day, not 00:00 UTC
    return ProbeTags(
        title=read.title or metadata.get("title") or None,
        artist=read.artist or metadata.get("artist") or None,
        album=read.album or metadata.get("album") or None,
        recorded=recorded,
    )


def _ffmpeg_date(metadata: dict[str, str]) -> str | None:
    """The raw date text, as ffmpeg names it across formats (ID3 TDRC, Vorbis DATE,
    MP4 ©day, RIFF ICRD, Matroska DATE_RECORDED; bext's date and time come apart)."""
    text = metadata.get("date") or metadata.get("date_recorded")
    if not text:
        return None
    time = metadata.get("creation_time", "")  # bext OriginationTime, e.g. "20:30:00"
    if re.fullmatch(r"\d{4}-\d\d-\d\d", text) and re.fullmatch(r"\d\d:\d\d:\d\d", time):
        return f"{text}T{time}"
    return text


def _has_time(text: str) -> bool:
    return re.search(r"\d[T ]\d\d:?\d\d", text.strip()) is not None


# --- cover art -----------------------------------------------------------------------

_FRONT_COVER = 3  # ID3 APIC / FLAC picture type


def _cover(path: Path) -> CoverArt | None:
    """The front cover (else the first picture) mutagen finds; None when it finds none
    or cannot read the file's tags (WebM)."""
    try:
        import mutagen

        audio = mutagen.File(path)
    except Exception:  # mutagen raises all sorts for damaged files; the probe passed
        return None
    if audio is None:
        return None
    pictures = _pictures(audio)
    if not pictures:
        return None
    pictures.sort(key=lambda picture: picture[0] != _FRONT_COVER)
    _, data, mime = pictures[0]
    return CoverArt(data=data, mime=mime or _sniff_image(data))


def _pictures(audio: Any) -> list[tuple[int, bytes, str]]:
    """(picture type, bytes, mime) of every picture in the file's tags."""
    from mutagen.flac import Picture
    from mutagen.mp4 import MP4Cover

    found: list[tuple[int, bytes, str]] = []
    for picture in getattr(audio, "pictures", None) or ():  # FLAC's own blocks
        found.append((picture.type, picture.data, picture.mime))
    tags = audio.tags
    if tags is None:
        return found
    if hasattr(tags, "getall"):  # ID3 (MP3, AIFF, WAV's 'id3 ' chunk)
        for frame in tags.getall("APIC"):
            found.append((frame.type, frame.data, frame.mime))
    with contextlib.suppress(KeyError, ValueError, TypeError):
        for cover in tags.get("covr") or ():  # MP4
            mime = "image/png" if cover.imageformat == MP4Cover.FORMAT_PNG else "image/jpeg"
            found.append((_FRONT_COVER, bytes(cover), mime))
    with contextlib.suppress(KeyError, ValueError, TypeError):
        for encoded in tags.get("metadata_block_picture") or ():  # Vorbis comments (Ogg)
            with contextlib.suppress(Exception):
                picture = Picture(base64.b64decode(encoded))
                found.append((picture.type, picture.data, picture.mime))
    return found


def _sniff_image(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"
