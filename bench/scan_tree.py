"""The scan benchmark's rehearsal tree: dated session folders of small WAV takes, built once
into a cache folder and reused; each run works on a hard-linked copy, so moving files in
it never changes the cache.

    <cache>/<files>-<sessions>-v1/
      230101/                 a session (YYMMDD), about files/sessions audio files:
        blue groove/take01.wav  80 % as takes in a folder per song (8 songs, ~10 takes)
        set2/neon river/take03.wav   every fourth session keeps its songs in set folders
        jam 07.wav              20 % loose files: shared names ("jam 07") and one-offs
        notes.txt               non-audio: skipped by name (notes.txt, setlist.pdf,
        mix.session             cover.jpg) or sniffed and refused (mix.session)
        .DS_Store               hidden: never listed

Every WAV is one of three templates (0.10, 0.15, 0.20 s, 44.1 kHz mono 16-bit) with its
number written over its first samples, so no two fingerprints are the same."""

from __future__ import annotations

import os
import random
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from tests.audio_fixtures import write_wav

VERSION = "v1"
COMPLETE = ".complete"  # hidden: the scanner never sees it
FIRST_DAY = date(2023, 1, 1)
DAYS_BETWEEN = 3
SONGS_PER_SESSION = 8
LOOSE_SHARE = 0.2
SECONDS = (0.10, 0.15, 0.20)
WAV_DATA_OFFSET = 44  # wave module: a plain 44-byte header, samples after
ADJECTIVES = ["blue", "broken", "electric", "slow", "quiet", "loud", "velvet", "hollow"]
ADJECTIVES += ["golden", "restless", "midnight", "paper", "crooked", "lazy", "neon", "wild"]
NOUNS = ["groove", "riff", "ballad", "shuffle", "waltz", "anthem", "jam", "drift", "echo"]
NOUNS += ["fever", "highway", "river", "engine", "garden", "mirror", "signal"]


@dataclass(frozen=True)
class Tree:
    root: Path
    audio: list[str]  # relative paths of the WAVs, sorted
    other: int  # visible non-audio files
    folders: int
    bytes: int
    built_seconds: float  # 0 when it came from the cache


def _templates(folder: Path) -> list[bytes]:
    out = []
    for index, seconds in enumerate(SECONDS):
        path = write_wav(
            folder / f"template{index}.wav", seconds=seconds, tone_hz=220 + 110 * index
        )
        out.append(path.read_bytes())
        path.unlink()
    return out


def patched(template: bytes, number: int) -> bytes:
    """The template with ``number`` written over its first four samples."""
    data = bytearray(template)
    data[WAV_DATA_OFFSET : WAV_DATA_OFFSET + 8] = struct.pack("<Q", number)
    return bytes(data)


def _plan(files: int, sessions: int, rng: random.Random) -> tuple[list[str], list[str]]:
    """(audio paths, non-audio paths) of the tree; the same arguments, the same tree."""
    songs = [f"{a} {n}" for a in ADJECTIVES for n in NOUNS]
    audio: list[str] = []
    other: list[str] = []
    base, extra = divmod(files, sessions)
    for index in range(sessions):
        day = FIRST_DAY + timedelta(days=index * DAYS_BETWEEN)
        session = f"{day:%y%m%d}"
        count = base + (1 if index < extra else 0)
        loose = round(count * LOOSE_SHARE)
        in_folders = count - loose
        picked = rng.sample(songs, SONGS_PER_SESSION)
        for number in range(in_folders):
            song = picked[number % SONGS_PER_SESSION]
            take = number // SONGS_PER_SESSION + 1
            folder = (
                f"{session}/set{1 + number % 2}/{song}" if index % 4 == 3 else f"{session}/{song}"
            )
            suffix = ".WAV" if (index + number) % 97 == 0 else ".wav"
            audio.append(f"{folder}/take{take:02d}{suffix}")
        for number in range(loose):
            # Half shared across sessions ("jam 03" is one track), half one-offs.
            name = f"jam {number + 1:02d}" if number % 2 == 0 else f"idea {session}-{number:02d}"
            audio.append(f"{session}/{name}.wav")
        other.append(f"{session}/notes.txt")
        other.append(f"{session}/.DS_Store")
        if index % 10 == 0:
            other.append(f"{session}/setlist.pdf")
            other.append(f"{session}/{picked[0]}/cover.jpg")
        if index % 25 == 0:
            other.append(f"{session}/mix.session")
    return sorted(audio), other


def build(cache: Path, files: int, sessions: int) -> Tree:
    """The tree for these sizes, from the cache when it is there."""
    sessions = max(1, min(sessions, files))
    root = cache / f"{files}-{sessions}-{VERSION}"
    audio, other = _plan(files, sessions, random.Random(files * 1000 + sessions))
    started = time.perf_counter()
    built = 0.0
    if not (root / COMPLETE).exists():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="building-", dir=cache))
        templates = _templates(staging)
        for number, relative in enumerate(audio):
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(patched(templates[number % len(templates)], number))
        for relative in other:
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not a recording\n" * 8)
        (staging / COMPLETE).write_text(f"{len(audio)} audio files\n")
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)
        built = time.perf_counter() - started
    visible_other = sum(1 for path in other if not any(p.startswith(".") for p in path.split("/")))
    folders = sum(len(dirs) for _, dirs, _ in os.walk(root))
    size = sum((root / path).stat().st_size for path in audio)
    return Tree(root, audio, visible_other, folders, size, built)


def linked_copy(tree: Path, target: Path) -> Path:
    """A copy of the tree whose files are hard links (a plain copy across file systems)."""
    for folder, dirs, names in os.walk(tree):
        relative = Path(folder).relative_to(tree)
        (target / relative).mkdir(parents=True, exist_ok=True)
        dirs.sort()
        for name in names:
            if name == COMPLETE:
                continue
            source, copy = Path(folder) / name, target / relative / name
            try:
                os.link(source, copy)
            except OSError:
                shutil.copy2(source, copy)
    return target


def move_some(root: Path, audio: list[str], share: float, seed: int = 7) -> list[tuple[str, str]]:
    """Move or rename a share of the takes, as people tidy a tree: (old, new) paths.
    Half are renamed where they are, half go to a new folder under another session."""
    rng = random.Random(seed)
    chosen = rng.sample(audio, max(1, round(len(audio) * share)))
    moves = []
    for number, old in enumerate(chosen):
        folder, _, name = old.rpartition("/")
        stem, _, suffix = name.rpartition(".")
        if number % 2 == 0:
            new = f"{folder}/{stem} (kept).{suffix}"
        else:
            session = old.split("/", 1)[0]
            new = f"{session}/sorted later/{stem}-{number:04d}.{suffix}"
        (root / new).parent.mkdir(parents=True, exist_ok=True)
        os.rename(root / old, root / new)
        moves.append((old, new))
    return moves
