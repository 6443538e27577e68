"""Phase 3a: look inside one new or changed file (in a worker thread): is it audio,
what do its tags say, and a quick fingerprint to recognise it after a move."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
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
    suffix = PurePosixPath(path).suffix.lower().lstrip(".")
    return suffix not in NOT_AUDIO_EXTENSIONS


def inspect_file(root: Path, path: str) -> Inspected:
    """Raises NotAudio, or OSError when the file cannot be read."""
    with open(root / path, "rb") as handle:
        return inspect_handle(path, handle, os.fstat(handle.fileno()).st_size)


def inspect_handle(path: str, handle: BinaryIO, size: int) -> Inspected:
    """The same for any seekable file object (a local file, a WebDAV file read in ranges)."""
    head = handle.read(max(audio.SNIFF_BYTES, FINGERPRINT_BYTES))
    found = audio.is_audio(PurePosixPath(path).name, head)
    if found is None:
        raise NotAudio(path)
    tail = b""
    if size > 2 * FINGERPRINT_BYTES:
        handle.seek(size - FINGERPRINT_BYTES)
        tail = handle.read(FINGERPRINT_BYTES)
    # Size + first and last 64 KiB: cheap on a 3-hour WAV, and a moved or renamed
    # file keeps it (full hashing is the media pipeline's job).
    digest = hashlib.sha256(f"{size}:".encode())
    digest.update(head[:FINGERPRINT_BYTES])
    digest.update(tail)
    handle.seek(0)
    tags = audio.read_tags(handle, found)
    return Inspected(format=found, content_hash=digest.hexdigest(), tags=tags)
