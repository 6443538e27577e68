"""Phase 3a: look inside one new or changed file (in a worker thread): is it audio,
what do its tags say, and a quick fingerprint to recognise it after a move."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from backend.library import audio

# Obviously not recordings: skipped by name, so a re-scan never opens them.
NOT_AUDIO_EXTENSIONS = frozenset(
    {
        "jpg",
        "jpeg",
        "png",
        "gif",
        "webp",
        "heic",
        "bmp",
        "tif",
        "tiff",
        "svg",
        "txt",
        "md",
        "pdf",
        "doc",
        "docx",
        "odt",
        "rtf",
        "xls",
        "xlsx",
        "ods",
        "csv",
        "json",
        "xml",
        "yml",
        "yaml",
        "html",
        "htm",
        "zip",
        "rar",
        "7z",
        "gz",
        "tar",
        "mid",
        "midi",
        "mov",
        "avi",
        "m4v",
        "mpg",
        "cue",
        "lrc",
        "m3u",
        "m3u8",
        "pls",
        "nfo",
        "log",
        "ini",
        "url",
        "lnk",
        "exe",
        "dll",
        "db",
        "sqlite",
        "reapeaks",
        "pk",
        "asd",
    }
)
FINGERPRINT_BYTES = 1 << 16


@dataclass(frozen=True)
class Inspected:
    format: str
    content_hash: str
    tags: audio.Tags


class NotAudio(Exception):
    pass


def worth_opening(path: str) -> bool:
    dot = path.rfind(".")
    if dot <= path.rfind("/") + 1:  # no suffix (or a leading dot only), as PurePosixPath
        return True
    return path[dot + 1 :].lower() not in NOT_AUDIO_EXTENSIONS


def inspect_file(root: Path | str, path: str) -> Inspected:
    """Raises NotAudio, or OSError when the file cannot be read."""
    # Unbuffered: the head is read in one call, and nothing is copied twice.
    with open(os.path.join(root, path), "rb", buffering=0) as handle:
        return inspect_handle(path, handle, os.fstat(handle.fileno()).st_size)


def inspect_handle(path: str, handle: BinaryIO, size: int) -> Inspected:
    """The same for any seekable file object (a local file, a WebDAV file read in ranges)."""
    head = _read_fully(handle, max(audio.SNIFF_BYTES, FINGERPRINT_BYTES))
    found = audio.is_audio(path.rpartition("/")[2], head)
    if found is None:
        raise NotAudio(path)
    tail = b""
    if size > 2 * FINGERPRINT_BYTES:
        handle.seek(size - FINGERPRINT_BYTES)
        tail = _read_fully(handle, FINGERPRINT_BYTES)
    # Size + first and last 64 KiB: cheap on a 3-hour WAV, and a moved or renamed
    # file keeps it (full hashing is the media pipeline's job).
    digest = hashlib.sha256(f"{size}:".encode())
    digest.update(head[:FINGERPRINT_BYTES])
    digest.update(tail)
    handle.seek(0)
    tags = audio.read_tags(handle, found, head=head, size=size)
    return Inspected(format=found, content_hash=digest.hexdigest(), tags=tags)


def _read_fully(handle: BinaryIO, length: int) -> bytes:
    """``length`` bytes, or fewer at the end of the file (a raw read may return less)."""
    data = handle.read(length)
    if len(data) >= length or not data:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = handle.read(length - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
