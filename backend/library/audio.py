"""Is a file audio, and what do its tags say? In-process and cheap: the scanner calls
this for every file, so no subprocess; ffmpeg's probe comes later, per new version.

Which decides, the name or the bytes? The bytes. A ``.wav`` that holds text is not
audio, and an MP3 called ``take1`` or ``take1.txt`` is. The name only breaks a tie when
the bytes fit audio but could be something else: a lone MPEG or ADTS frame header (two
in a row are proof), an MP4 with only generic brands such as 'isom' and no track
handler in sight, a WebM or Ogg stream whose codec is not in the head. Such a file is
audio only under one of AUDIO_EXTENSIONS, which leaves out '.mp4': an MP4 counts when
its bytes say audio (brand 'M4A ', or a sound track and no video track).
"""

from __future__ import annotations

import logging
import math
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import mutagen
from mutagen.oggopus import OggOpus
from mutagen.wave import WAVE

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {"wav", "wave", "flac", "mp3", "m4a", "aac", "ogg", "oga", "opus"}
    | {"aif", "aiff", "aifc", "webm", "weba"}
)

# Enough for an ID3v2 tag without cover art plus two MPEG frames, and for the track
# entries of a WebM or a fast-start MP4. A longer ID3v2 tag (cover art runs to hundreds
# of KB) is not followed: its header alone makes the file 'mp3', since ID3v2 in front of
# anything but MP3 is rare and the probe names the codec anyway.
SNIFF_BYTES = 4096


def has_audio_extension(name: str) -> bool:
    """'take1.WAV' and 'bands/x/take1.flac' yes; 'take1.mp4', 'wav', '.wav' no."""
    return PurePosixPath(name).suffix[1:].lower() in AUDIO_EXTENSIONS


def sniff_format(head: bytes) -> str | None:
    """The audio format the first bytes of a file show: 'wav', 'aiff', 'flac', 'mp3',
    'aac', 'm4a', 'ogg', 'opus', 'webm', or None (text, images, archives, video, empty).

    Give it SNIFF_BYTES bytes (fewer when the file is shorter). The format may rest on
    weak evidence; ``is_audio`` tells those cases apart.
    """
    return _sniff(head)[0]


def is_audio(name: str, head: bytes) -> str | None:
    """The format of the file ``name`` starting with ``head``, when it is audio."""
    fmt, sure = _sniff(head)
    return fmt if sure or has_audio_extension(name) else None


def _sniff(head: bytes) -> tuple[str | None, bool]:
    """(format, whether the bytes alone prove it)."""
    magic = head[:4]
    if magic in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav", True
    if magic == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff", True
    if magic == b"fLaC":
        return "flac", True
    if magic == b"OggS":
        return _sniff_ogg(head)
    if magic == b"\x1a\x45\xdf\xa3":
        return _sniff_ebml(head)
    if head[4:8] == b"ftyp":
        return _sniff_iso(head)
    offset = _id3_end(head)
    if offset == 0:
        return _sniff_frames(head, 0)
    while offset < len(head) and head[offset] == 0:  # padding some taggers add after the tag
        offset += 1
    if offset + 7 > len(head):  # the tag runs past the head: see SNIFF_BYTES
        return "mp3", True
    if head[offset : offset + 4] == b"fLaC":
        return "flac", True
    for fmt, frame_length, _ in _FRAMES:  # one frame after a tag is proof enough
        if frame_length(head, offset):
            return fmt, True
    return None, False


def _id3_end(head: bytes) -> int:
    """Where the ID3v2 tags at the start of ``head`` end (may exceed it); 0 if none."""
    offset = 0
    while head[offset : offset + 3] == b"ID3" and len(head) >= offset + 10:
        major, flags, size = head[offset + 3], head[offset + 5], head[offset + 6 : offset + 10]
        if major not in (2, 3, 4) or any(byte & 0x80 for byte in size):
            break
        synchsafe = size[0] << 21 | size[1] << 14 | size[2] << 7 | size[3]
        offset += 10 + synchsafe + (10 if flags & 0x10 else 0)  # 0x10: a footer follows
    return offset


def _sniff_frames(head: bytes, offset: int) -> tuple[str | None, bool]:
    """MP3 or ADTS AAC frames at ``offset``: sure when the next frame header follows."""
    for fmt, frame_length, header_size in _FRAMES:
        length = frame_length(head, offset)
        if length == 0:
            continue
        following = offset + length
        if following + header_size > len(head):  # the next header is past the head
            return fmt, False
        return (fmt, True) if frame_length(head, following) else (None, False)
    return None, False


# kbps by bitrate index 1-14, Layer III only (Layers I/II are not 'mp3').
_MP3_BITRATES = {
    "v1": (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    "v2": (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame_length(head: bytes, i: int) -> int:
    """Length of the MPEG Layer III frame whose header is at ``i``; 0 when there is none."""
    if len(head) < i + 4 or head[i] != 0xFF or head[i + 1] & 0xE0 != 0xE0:
        return 0
    b1, b2, b3 = head[i + 1 : i + 4]
    version, layer, bitrate_index, rate_index = b1 >> 3 & 3, b1 >> 1 & 3, b2 >> 4, b2 >> 2 & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return 0  # reserved version, not Layer III, free-format or bad bitrate, bad rate
    if b3 & 3 == 2:  # reserved emphasis
        return 0
    bitrate = _MP3_BITRATES["v1" if version == 3 else "v2"][bitrate_index - 1] * 1000
    factor = 144 if version == 3 else 72  # samples per frame / 8
    return factor * bitrate // _MP3_SAMPLE_RATES[version][rate_index] + (b2 >> 1 & 1)


def _adts_frame_length(head: bytes, i: int) -> int:
    """Length of the ADTS (raw AAC) frame whose header is at ``i``; 0 when there is none."""
    # Sync 0xFFF then layer 00 (0xFFF1/0xFFF9, or 0xFFF0/0xFFF8 with a CRC).
    if len(head) < i + 7 or head[i] != 0xFF or head[i + 1] & 0xF6 != 0xF0:
        return 0
    if head[i + 2] >> 2 & 0xF > 12:  # sampling frequency index 13-15 are reserved
        return 0
    length = (head[i + 3] & 3) << 11 | head[i + 4] << 3 | head[i + 5] >> 5
    return length if length >= 7 else 0


_FRAMES = (("mp3", _mp3_frame_length, 4), ("aac", _adts_frame_length, 7))


def _sniff_ogg(head: bytes) -> tuple[str | None, bool]:
    """Opus or Vorbis (or FLAC, Speex) by the first packet; Theora is video."""
    if len(head) < 27:
        return "ogg", False
    packet = head[27 + head[26] :]  # after the page header and its segment table
    if packet.startswith(b"OpusHead"):
        return "opus", True
    if packet.startswith((b"\x01vorbis", b"\x7fFLAC", b"Speex   ")):
        return "ogg", True
    if packet.startswith(b"\x80theora"):
        return None, True
    return "ogg", False


# A Matroska CodecID element (0x86) with a one-byte size, holding 'A_OPUS', 'V_VP9', ...
_EBML_CODEC = re.compile(rb"\x86[\x81-\x9f]([AV])_")


def _sniff_ebml(head: bytes) -> tuple[str | None, bool]:
    kinds = {match.group(1) for match in _EBML_CODEC.finditer(head)}
    if b"V" in kinds:  # a video, perhaps with sound: not a recording to index
        return None, True
    return "webm", b"A" in kinds


_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_GENERIC_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"dash"}
_HANDLER = re.compile(rb"hdlr.{8}(soun|vide)", re.DOTALL)  # a track's handler type


def _sniff_iso(head: bytes) -> tuple[str | None, bool]:
    """ISO BMFF (MP4 family): audio by its brands or, in a fast-start file, its tracks."""
    box_end = min(int.from_bytes(head[:4], "big"), len(head))
    # Major brand, minor version (skipped), then compatible brands to the end of 'ftyp'.
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
    handlers = {match.group(1) for match in _HANDLER.finditer(head)}
    if b"vide" in handlers:
        return None, True
    if b"soun" in handlers or brands & _AUDIO_BRANDS:
        return "m4a", True
    if brands & _GENERIC_BRANDS:
        return "m4a", False
    return None, False


@dataclass(frozen=True, slots=True)
class Tags:
    """What a file says about itself. Every field may be unknown."""

    title: str | None = None
    artist: str | None = None
    album: str | None = None
    recorded_at: datetime | None = None  # UTC
    duration_ms: int | None = None
    sample_rate: int | None = None  # Hz; Opus always decodes at 48000
    channels: int | None = None
    bitrate: int | None = None  # bits per second


# Tag keys per family: ID3 frame, MP4 atom, Vorbis comment (FLAC, Ogg).
_TAG_KEYS = {
    "title": ("TIT2", "©nam", "title"),
    "artist": ("TPE1", "©ART", "artist"),
    "album": ("TALB", "©alb", "album"),
    "date": ("TDRC", "©day", "date"),
}


def _mutagen_classes() -> dict[str, type[mutagen.FileType]]:
    from mutagen.aiff import AIFF
    from mutagen.flac import FLAC
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4
    from mutagen.oggvorbis import OggVorbis

    return {"wav": WAVE, "aiff": AIFF, "flac": FLAC, "mp3": MP3, "m4a": MP4,
            "opus": OggOpus, "ogg": OggVorbis}  # fmt: skip


# The class for a sniffed format: mutagen.File would score every format against the
# header first, most of the cost of reading a small file's tags.
_MUTAGEN_FOR_FORMAT = _mutagen_classes()


def read_tags(
    fileobj: BinaryIO | str | Path,
    format: str | None = None,
    *,
    head: bytes | None = None,
    size: int | None = None,
) -> Tags:
    """Tags and stream facts of an audio file (seekable; its position is not kept).

    Never raises for a broken or unknown file: that gives an empty Tags (logged at
    debug). A path that cannot be opened raises OSError, since that is no fault of the
    file's content. WebM files give empty Tags: mutagen cannot read them and the probe
    fills their facts in. ``format`` (from sniff_format/is_audio) saves mutagen
    guessing; ``head`` (the file's first bytes, already read) and ``size`` (its length)
    save reading them again.

    A WAV (RIFF, RF64, BW64) or AIFF without an ID3 chunk is read by walking its chunks
    here (``read_iff``), not by mutagen: the header is all there is to read, and a scan
    reads thousands of them. Anything that walk is unsure of goes to mutagen.
    """
    if isinstance(fileobj, str | Path):
        with open(fileobj, "rb") as opened:
            return read_tags(opened, format, head=head, size=size)
    if format in ("wav", "aiff"):
        try:
            fast = read_iff(fileobj, head=head, size=size)
        except Exception as error:  # a bug here must not lose the file: mutagen decides
            log.debug("chunk walk failed on %r: %s", getattr(fileobj, "name", fileobj), error)
            fast = None
        if fast is not None:
            return fast
        fileobj.seek(0)
    return _read_tags_mutagen(fileobj, format)


def _read_tags_mutagen(fileobj: BinaryIO, format: str | None = None) -> Tags:
    known = _MUTAGEN_FOR_FORMAT.get(format or "")
    if known is not None:
        try:
            return _tags_of(known(fileobj), fileobj)
        except Exception:  # not quite what the sniff said: let mutagen look at it
            fileobj.seek(0)
    try:
        audio = mutagen.File(fileobj)
        return _tags_of(audio, fileobj) if audio is not None else Tags()
    except Exception as error:  # mutagen raises all sorts for damaged files
        log.debug("unreadable audio file %r: %s", getattr(fileobj, "name", fileobj), error)
        return Tags()


def _tags_of(audio: mutagen.FileType, fileobj: BinaryIO) -> Tags:
    text = {field: _first_text(audio.tags, keys) for field, keys in _TAG_KEYS.items()}
    if isinstance(audio, WAVE):  # mutagen reads only a WAV's 'id3 ' chunk
        for field, value in _riff_text(fileobj).items():
            text[field] = text[field] or value
    info = audio.info
    length = getattr(info, "length", None)
    sample_rate = _positive_int(getattr(info, "sample_rate", None))
    return Tags(
        title=text["title"],
        artist=text["artist"],
        album=text["album"],
        recorded_at=parse_tag_datetime(text["date"]) if text["date"] else None,
        duration_ms=_positive_int(length * 1000 if length else None),
        sample_rate=sample_rate or (48000 if isinstance(audio, OggOpus) else None),
        channels=_positive_int(getattr(info, "channels", None)),
        bitrate=_positive_int(getattr(info, "bitrate", None)),
    )


def _first_text(tags: Any, keys: tuple[str, ...]) -> str | None:
    if tags is None:
        return None
    for key in keys:
        try:
            value = tags.get(key)
        except (KeyError, ValueError):  # e.g. '©nam' is no valid Vorbis comment key
            continue
        values = getattr(value, "text", value)  # an ID3 frame keeps its strings in .text
        if isinstance(values, list):
            values = values[0] if values else None
        text = str(values).strip("\x00 \t\r\n") if values is not None else ""
        if text:
            return text
    return None


def _positive_int(value: object) -> int | None:
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return round(value)
    return None


_INFO_FIELDS = {b"INAM": "title", b"IART": "artist", b"IPRD": "album", b"ICRD": "date"}
_MAX_CHUNK = 1 << 20  # a LIST chunk larger than this is not metadata worth reading


def _riff_text(fileobj: BinaryIO) -> dict[str, str]:
    """Title, artist, album and date from a WAV's LIST/INFO chunk; the recording time
    from its 'bext' chunk (Broadcast WAV, as Zoom and Tascam recorders write) wins
    over INFO's ICRD."""
    found: dict[str, str] = {}
    recorded: str | None = None
    fileobj.seek(0)
    header = fileobj.read(12)
    end, offset = 8 + int.from_bytes(header[4:8], "little"), 12
    while offset + 8 <= end:
        fileobj.seek(offset)
        chunk = fileobj.read(8)
        if len(chunk) < 8:
            break
        chunk_id, size = chunk[:4], int.from_bytes(chunk[4:], "little")
        if chunk_id == b"LIST" and size <= _MAX_CHUNK:
            body = fileobj.read(size)
            if body[:4] == b"INFO":
                for key, value in _info_entries(body[4:]):
                    if key in _INFO_FIELDS and value:
                        found.setdefault(_INFO_FIELDS[key], value)
        elif chunk_id == b"bext" and size >= 338:
            recorded = _bext_origination(fileobj.read(338)) or recorded
        offset += 8 + size + (size & 1)  # chunks are padded to an even length
    if recorded:
        found["date"] = recorded
    return found


def _bext_origination(body: bytes) -> str | None:
    """'2023-10-15T20:30:00' from OriginationDate and OriginationTime, whose separators
    the standard leaves free ('2023:10:15', '20-30-00')."""
    day, time = _decode(body[320:330]), _decode(body[330:338])
    if not re.fullmatch(r"[0-9]{4}\D[0-9]{2}\D[0-9]{2}", day):
        return None
    stamp = f"{day[:4]}-{day[5:7]}-{day[8:]}"
    if re.fullmatch(r"[0-9]{2}\D[0-9]{2}\D[0-9]{2}", time):
        stamp += f"T{time[:2]}:{time[3:5]}:{time[6:]}"
    return stamp


def _info_entries(body: bytes) -> list[tuple[bytes, str]]:
    entries, offset = [], 0
    while offset + 8 <= len(body):
        key, size = (
            body[offset : offset + 4],
            int.from_bytes(body[offset + 4 : offset + 8], "little"),
        )
        entries.append((key, _decode(body[offset + 8 : offset + 8 + size])))
        offset += 8 + size + (size & 1)
    return entries


def _decode(raw: bytes) -> str:
    """RIFF text has no declared encoding: UTF-8 when it is, else Latin-1."""
    raw = raw.split(b"\x00", 1)[0]
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return raw.decode("latin-1").strip()


# --- WAV and AIFF headers, read without mutagen ----------------------------------------

_WAV_FORMATS_READ = frozenset({1, 3, 6, 7, 0xFFFE})  # PCM, float, A-law, mu-law, extensible
_UNKNOWN_SIZE = 0xFFFFFFFF  # RF64's 32-bit sizes (the real ones are in 'ds64'); streamed


class _Bytes:
    """Reads at an offset, from the bytes already in hand where it can."""

    __slots__ = ("fileobj", "head")

    def __init__(self, fileobj: BinaryIO, head: bytes) -> None:
        self.fileobj, self.head = fileobj, head

    def at(self, offset: int, length: int) -> bytes:
        if offset + length <= len(self.head):
            return self.head[offset : offset + length]
        self.fileobj.seek(offset)
        return self.fileobj.read(length)


_USUAL_CHUNKS = frozenset({b"fmt ", b"data", b"LIST", b"bext", b"fact", b"JUNK", b"ds64"})


def _valid_chunk_id(raw: bytes) -> bool:
    """mutagen's rule (mutagen._iff.is_valid_chunk_id after decoding and rstrip): where
    it stops walking, so does this walk, and the two agree on what a file holds."""
    if raw in _USUAL_CHUNKS:
        return True
    try:
        text = raw.decode("ascii").rstrip()
    except UnicodeDecodeError:
        return False
    return len(text) > 0 and min(text) >= " " and max(text) <= "~"


def read_iff(
    fileobj: BinaryIO, *, head: bytes | None = None, size: int | None = None
) -> Tags | None:
    """Stream facts (and, for a WAV, LIST/INFO text and the 'bext' date) of a WAV or AIFF
    by walking its chunks; None when mutagen should read it instead: an ID3 chunk (tags
    only mutagen reads), a compressed WAV codec, no format chunk, anything odd.

    For the files it reads it gives what mutagen and ``_riff_text`` give, with two
    differences, both where mutagen gives nothing or too much: an RF64/BW64 file (sizes
    in its 'ds64' chunk) is read, and a 'data' chunk that claims more than the file holds
    (a recording cut off, or a writer that never filled the size in) counts only what is
    there.
    """
    if size is None:
        size = fileobj.seek(0, 2)
    reader = _Bytes(fileobj, head or b"")
    header = reader.at(0, 12)
    if len(header) < 12:
        return None
    if header[8:12] == b"WAVE" and header[:4] in (b"RIFF", b"RF64", b"BW64"):
        return _read_wave(reader, header, size)
    if header[:4] == b"FORM" and header[8:12] in (b"AIFF", b"AIFC"):
        return _read_aiff(reader, header, size)
    return None


def _read_wave(reader: _Bytes, header: bytes, size: int) -> Tags | None:
    declared = int.from_bytes(header[4:8], "little")
    sixty_four = header[:4] != b"RIFF"
    # Two walks over the same chunks, as the mutagen path makes them: mutagen lists
    # chunks below the (padded) RIFF size and stops at the first invalid one;
    # _riff_text looks for text below the RIFF size, over anything. RF64 sizes are in
    # 'ds64', not the header: the file's end bounds both.
    listed_end = size if sixty_four else 8 + declared + (declared & 1)
    text_end = size if sixty_four else 8 + declared
    fmt: bytes | None = None
    data_offset: int | None = None
    data_size = 0
    ds64_data: int | None = None
    text: dict[str, str] = {}
    recorded: str | None = None
    listing, offset = True, 12
    while True:
        in_text = offset + 8 <= text_end
        listing = listing and offset < listed_end
        if not (listing or in_text):
            break
        chunk = reader.at(offset, 8)
        if len(chunk) < 8:
            break
        chunk_id, length = chunk[:4], int.from_bytes(chunk[4:], "little")
        name = chunk_id.rstrip()
        if name.lower() == b"id3":
            return None  # ID3 tags in a WAV: mutagen reads those
        body_at, step = offset + 8, length
        if listing and not _valid_chunk_id(chunk_id):
            listing = False
        elif listing and name in (b"LIST", b"RIFF"):
            if length < 4:
                listing = False  # mutagen stops at a list too short for its name
            elif not reader.at(body_at, 4).isascii():
                return None  # mutagen gives up on the whole file: let it say so
        elif listing and name == b"fmt" and fmt is None:
            fmt = reader.at(body_at, min(length, 40))
        elif listing and name == b"data" and data_offset is None:
            if sixty_four and length == _UNKNOWN_SIZE:
                if ds64_data is None:
                    return None
                step = length = ds64_data
            data_offset, data_size = body_at, length
        elif listing and sixty_four and name == b"ds64" and length >= 16:
            ds64_data = int.from_bytes(reader.at(body_at + 8, 8), "little")
        if in_text and chunk_id == b"LIST" and length <= _MAX_CHUNK:
            body = reader.at(body_at, length)
            if body[:4] == b"INFO":
                for key, value in _info_entries(body[4:]):
                    if key in _INFO_FIELDS and value:
                        text.setdefault(_INFO_FIELDS[key], value)
        elif in_text and chunk_id == b"bext" and length >= 338:
            recorded = _bext_origination(reader.at(body_at, 338)) or recorded
        offset = body_at + step + (step & 1)  # chunks are padded to an even length
    if fmt is None or len(fmt) < 16:
        return None
    audio_format, channels, sample_rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if audio_format not in _WAV_FORMATS_READ:
        return None  # compressed: mutagen's reading of it stays as it was
    seconds = 0.0
    if data_offset is not None and block_align > 0:
        present = max(0, size - data_offset)
        if data_size in (0, _UNKNOWN_SIZE) or data_size > present:
            data_size = present  # never filled in, or cut off: what the file holds
        if sample_rate > 0:
            seconds = data_size / block_align / sample_rate
    if recorded:
        text["date"] = recorded
    return _facts(text, seconds, sample_rate, channels, channels * bits * sample_rate)


def _read_aiff(reader: _Bytes, header: bytes, size: int) -> Tags | None:
    declared = int.from_bytes(header[4:8], "big")
    end = 8 + declared + (declared & 1)
    comm: bytes | None = None
    offset = 12
    while offset + 8 <= end:
        chunk = reader.at(offset, 8)
        if len(chunk) < 8 or not _valid_chunk_id(chunk[:4]):
            break
        chunk_id, length = chunk[:4], int.from_bytes(chunk[4:], "big")
        if chunk_id.lower() == b"id3 ":
            return None  # AIFF keeps its tags in ID3: mutagen reads those
        if chunk_id == b"COMM" and comm is None:
            comm = reader.at(offset + 8, min(length, 18))
        offset += 8 + length + (length & 1)
    if comm is None or len(comm) < 18:
        return None
    channels, frames, bits = struct.unpack_from(">hLh", comm)
    sample_rate = _extended_float(comm[8:18])
    if sample_rate is None:
        return None
    seconds = frames / float(sample_rate) if sample_rate else 0.0
    return _facts({}, seconds, sample_rate, channels, channels * bits * sample_rate)


def _extended_float(data: bytes) -> int | None:
    """An AIFF sample rate (80-bit IEEE extended), truncated as mutagen's read_float and
    AIFFInfo do; None for what mutagen refuses (inf, nan, negative, too large)."""
    exponent, high, low = struct.unpack(">hLL", data)
    sign = 1
    if exponent < 0:
        sign, exponent = -1, exponent + 0x8000
    if exponent == high == low == 0:
        return 0
    if exponent == 0x7FFF:
        return None
    try:
        rate = int(sign * ((high * 0x100000000 + low) * pow(2.0, exponent - 16383 - 63)))
    except OverflowError:
        return None
    return rate if rate >= 0 else None


def _facts(
    text: dict[str, str], length: float, sample_rate: int, channels: int, bitrate: int
) -> Tags:
    date = text.get("date")
    return Tags(
        title=text.get("title"),
        artist=text.get("artist"),
        album=text.get("album"),
        recorded_at=parse_tag_datetime(date) if date else None,
        duration_ms=_positive_int(length * 1000 if length else None),
        sample_rate=_positive_int(sample_rate),
        channels=_positive_int(channels),
        bitrate=_positive_int(bitrate),
    )


_TAG_DATE = re.compile(
    r"(?P<y>[0-9]{4})(?P<sep>[-/]?)(?P<m>[0-9]{2})(?P=sep)(?P<d>[0-9]{2})"
    r"(?:[T ](?P<H>[0-9]{2}):?(?P<M>[0-9]{2})(?::?(?P<S>[0-9]{2})(?:\.[0-9]+)?)?)?"
    r"\s*(?P<tz>Z|[+-][0-9]{2}:?[0-9]{2})?"
)


def parse_tag_datetime(text: str) -> datetime | None:
    """A recording time in UTC from a date tag, when it holds at least a full date.

    '2023-10-15', '2023/10/15', '20231015', '2023-10-15T20:30', '2023-10-15 20:30:00',
    '2023-10-15T20:30:00+02:00', '...Z'. A bare year or year-month says too little to
    be a recording date: None. Without a time the date means 00:00 UTC; a time without
    an offset is taken as UTC (a recorder's local zone is unknown).
    """
    match = _TAG_DATE.fullmatch(text.strip())
    if match is None:
        return None
    try:
        zone = UTC
        if match["tz"] and match["tz"] != "Z":
            digits = match["tz"].replace(":", "")
            offset = timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
            zone = timezone(-offset if digits[0] == "-" else offset)
        moment = datetime(
            int(match["y"]),
            int(match["m"]),
            int(match["d"]),
            int(match["H"] or 0),
            int(match["M"] or 0),
            int(match["S"] or 0),
            tzinfo=zone,
        )
    except ValueError:  # 2023-02-30, 25:00, an offset of a day or more
        return None
    return moment.astimezone(UTC)
