"""Audio sniffing and tag reading, on real files encoded by ffmpeg and on crafted bytes."""

from __future__ import annotations

import io
import random
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.library.audio import (
    AUDIO_EXTENSIONS,
    SNIFF_BYTES,
    Tags,
    _read_tags_mutagen,
    has_audio_extension,
    is_audio,
    parse_tag_datetime,
    read_iff,
    read_tags,
    sniff_format,
)
from tests.audio_fixtures import ENCODINGS, write_encoded, write_wav

RECORDED = datetime(2023, 10, 15, 20, 30, tzinfo=UTC)
TAGS = {"title": "Grüne Groove", "artist": "Fuzz", "date": "2023-10-15T20:30:00"}

# Format written by the fixture -> what sniffing the bytes says.
SNIFFED = {
    "wav": "wav",
    "flac": "flac",
    "mp3": "mp3",
    "m4a": "m4a",
    "mp4": "m4a",
    "aac": "aac",
    "ogg": "ogg",
    "opus": "opus",
    "aiff": "aiff",
    "webm": "webm",
}


def head_of(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(SNIFF_BYTES)


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


NOT_AUDIO = {
    "empty": b"",
    "text": b"These are the lyrics of the groove, not a recording.\n" * 20,
    "png": png(),
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(100),
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00" + bytes(100),
    "gzip": b"\x1f\x8b\x08\x00" + bytes(100),
    "html": b"<!doctype html><html><body>404</body></html>",
    "zeros": bytes(SNIFF_BYTES),
    "random": random.Random(7).randbytes(SNIFF_BYTES),
    "avi": b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(100),
    "mov": b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  " + bytes(100),
    "heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100),
}


# --- extensions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("take1.wav", True),
        ("TAKE1.WAV", True),
        ("bands/fuzz/231015/groove/take2.flac", True),
        ("take.2.mp3", True),
        *((f"x.{extension}", True) for extension in sorted(AUDIO_EXTENSIONS)),
        ("clip.mp4", False),  # may be video: only the bytes can say audio
        ("notes.txt", False),
        ("cover.png", False),
        ("wav", False),
        (".wav", False),  # a hidden file named '.wav', no extension
        ("take1", False),
        ("take1.wav.bak", False),
        ("", False),
    ],
)
def test_has_audio_extension(name: str, expected: bool) -> None:
    assert has_audio_extension(name) is expected


# --- sniffing real files ----------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(ENCODINGS))
def test_sniff_encoded_formats(fmt: str, tmp_path: Path) -> None:
    path = write_encoded(tmp_path / f"take{ENCODINGS[fmt][0]}", fmt, **TAGS)
    head = head_of(path)
    assert sniff_format(head) == SNIFFED[fmt]
    assert sniff_format(path.read_bytes()[:64]) is not None  # 64 bytes name the family
    if fmt == "mp4":  # generic 'isom' brand: the bytes fit audio but do not prove it
        assert is_audio(path.name, head) is None
        assert is_audio("take.m4a", head) == "m4a"
    else:  # the bytes alone decide, whatever the name
        assert is_audio(path.name, head) == SNIFFED[fmt]
        assert is_audio("take1.txt", head) == SNIFFED[fmt]
        assert is_audio("take1", head) == SNIFFED[fmt]


def test_stdlib_wav(tmp_path: Path) -> None:
    head = head_of(write_wav(tmp_path / "take.wav"))
    assert sniff_format(head) == "wav"
    assert is_audio("take.bin", head) == "wav"


def test_renamed_file_is_sniffed_by_its_bytes(tmp_path: Path) -> None:
    flac_called_wav = write_encoded(tmp_path / "take1.wav", "flac")
    assert is_audio(flac_called_wav.name, head_of(flac_called_wav)) == "flac"
    mp3_called_m4a = write_encoded(tmp_path / "take2.m4a", "mp3")
    assert is_audio(mp3_called_m4a.name, head_of(mp3_called_m4a)) == "mp3"


@pytest.mark.parametrize("kind", sorted(NOT_AUDIO))
def test_not_audio(kind: str) -> None:
    head = NOT_AUDIO[kind]
    assert sniff_format(head) is None
    assert is_audio("take1.wav", head) is None  # an audio name does not make it audio


@pytest.mark.parametrize(
    "head",
    [
        b"RIFF",
        b"RIFF\x24\x00\x00\x00WA",
        b"FORM\x00\x00\x00\x00AI",
        b"fLa",
        b"ID3",
        b"ID3\x04\x00\x00\x00\x00",  # an ID3 header cut short
        b"\xff",
        b"\xff\xfb",
        b"\x1a\x45\xdf",
        b"\x00\x00\x00\x1cfty",
    ],
)
def test_truncated_headers(head: bytes) -> None:
    assert sniff_format(head) is None
    assert is_audio("take.mp3", head) is None


# --- sniffing crafted bytes -------------------------------------------------------


def id3(size: int, flags: int = 0) -> bytes:
    synchsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00" + bytes([flags]) + synchsafe


def ogg_page(packet: bytes) -> bytes:
    return b"OggS\x00\x02" + bytes(20) + b"\x01" + bytes([len(packet)]) + packet


def ftyp(*brands: bytes, rest: bytes = b"") -> bytes:
    body = brands[0] + b"\x00\x00\x02\x00" + b"".join(brands[1:])
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + rest


def moov_handler(kind: bytes) -> bytes:
    return b"\x00\x00\x00\x21hdlr" + bytes(8) + kind + bytes(13)


EBML = b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01B\x82\x84webm" + bytes(20)
MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(413)  # MPEG-1 Layer III, 128 kbps, 44.1 kHz: 417 bytes


@pytest.mark.parametrize(
    ("head", "sniffed", "as_bin", "as_audio_name"),
    [
        # RIFF variants and AIFF-C.
        (b"RF64\xff\xff\xff\xffWAVEds64", "wav", "wav", "wav"),
        (b"BW64\xff\xff\xff\xffWAVEds64", "wav", "wav", "wav"),
        (b"FORM\x00\x00\x10\x00AIFCFVER", "aiff", "aiff", "aiff"),
        # MPEG frames: two in a row prove it, one is only a hint, one then junk is nothing.
        (MP3_FRAME * 2, "mp3", "mp3", "mp3"),
        (MP3_FRAME[:100], "mp3", None, "mp3"),
        (MP3_FRAME + b"junk" * 10, None, None, None),
        (b"\xff\xfb\x00\x64" + bytes(100), None, None, None),  # free-format bitrate
        (b"\xff\xfd\x90\x64" + bytes(100), None, None, None),  # Layer II, not mp3
        # ID3: one frame after the tag is proof; so is fLaC; a tag past the head is 'mp3'.
        (id3(20) + bytes(20) + MP3_FRAME[:8], "mp3", "mp3", "mp3"),
        (id3(20) + bytes(20) + bytes(7) + MP3_FRAME[:8], "mp3", "mp3", "mp3"),  # NUL padding
        (id3(20) + bytes(20) + b"fLaC\x00\x00\x00\x22", "flac", "flac", "flac"),
        (id3(20) + bytes(20) + b"\xff\xf1\x50\x80\x02\x1f\xfc", "aac", "aac", "aac"),
        (id3(100_000) + bytes(SNIFF_BYTES - 10), "mp3", "mp3", "mp3"),
        (id3(20, flags=0x10) + bytes(30) + MP3_FRAME[:8], "mp3", "mp3", "mp3"),  # footer
        (id3(20) + bytes(19) + b"hello world, no frame", None, None, None),
        # Ogg: the first packet tells Opus from Vorbis; Theora is video.
        (ogg_page(b"OpusHead\x01\x02"), "opus", "opus", "opus"),
        (ogg_page(b"\x01vorbis\x00\x00"), "ogg", "ogg", "ogg"),
        (ogg_page(b"\x7fFLAC\x01\x00"), "ogg", "ogg", "ogg"),
        (ogg_page(b"\x80theora\x03\x02"), None, None, None),
        (b"OggS", "ogg", None, "ogg"),
        # ISO BMFF: audio brand or sound track yes; any video track no; generic is a hint.
        (ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "m4a", "m4a", "m4a"),
        (ftyp(b"mp42", b"isom", rest=moov_handler(b"soun")), "m4a", "m4a", "m4a"),
        (ftyp(b"isom", b"isom", b"mp41"), "m4a", None, "m4a"),
        (ftyp(b"isom", rest=moov_handler(b"soun") + moov_handler(b"vide")), None, None, None),
        (ftyp(b"M4A ", rest=moov_handler(b"vide")), None, None, None),
        # WebM: an audio codec proves it; a video codec rules it out; none seen is a hint.
        (EBML + b"\x86\x86A_OPUS", "webm", "webm", "webm"),
        (EBML + b"\x86\x86A_OPUS" + b"\x86\x85V_VP9", None, None, None),
        (EBML, "webm", None, "webm"),
        # ADTS: 0xFFF1 (MPEG-4) and 0xFFF9 (MPEG-2), two frames in a row.
        ((b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(9)) * 2, "aac", "aac", "aac"),
        ((b"\xff\xf9\x50\x80\x02\x1f\xfc" + bytes(9)) * 2, "aac", "aac", "aac"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(9), "aac", None, "aac"),
    ],
)
def test_sniff_crafted(
    head: bytes, sniffed: str | None, as_bin: str | None, as_audio_name: str | None
) -> None:
    assert sniff_format(head) == sniffed
    assert is_audio("take.bin", head) == as_bin
    assert is_audio("take.m4a", head) == as_audio_name


def test_mp3_without_id3_tag(tmp_path: Path) -> None:
    data = write_encoded(tmp_path / "take.mp3", "mp3").read_bytes()
    size = data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]  # synchsafe
    bare = data[10 + size :]
    assert bare[:2] == b"\xff\xfb"
    assert is_audio("take", bare[:SNIFF_BYTES]) == "mp3"  # two frames in a row
    assert is_audio("take", bare[:300]) is None  # one frame is not enough without a name
    assert is_audio("take.mp3", bare[:300]) == "mp3"


# --- tags ---------------------------------------------------------------------------

# Containers whose tags mutagen (or our RIFF reader) sees; raw ADTS has none, and
# mutagen does not read Matroska/WebM at all.
TAGGED = ["wav", "flac", "mp3", "m4a", "mp4", "ogg", "opus", "aiff"]


@pytest.mark.parametrize("fmt", TAGGED)
def test_read_tags(fmt: str, tmp_path: Path) -> None:
    path = write_encoded(tmp_path / f"take{ENCODINGS[fmt][0]}", fmt, **TAGS)
    tags = read_tags(path)
    assert tags.title == "Grüne Groove"
    assert tags.artist == "Fuzz"
    assert tags.album is None
    assert tags.recorded_at == RECORDED
    assert abs(tags.duration_ms - 1000) <= 50
    assert tags.sample_rate == 48000
    assert tags.channels == 2
    assert tags.bitrate and tags.bitrate > 0


def test_read_tags_adts_has_facts_but_no_tags(tmp_path: Path) -> None:
    tags = read_tags(write_encoded(tmp_path / "take.aac", "aac", **TAGS))
    assert (tags.title, tags.artist, tags.recorded_at) == (None, None, None)
    assert abs(tags.duration_ms - 1000) <= 50
    assert (tags.sample_rate, tags.channels) == (48000, 2)


def test_read_tags_webm_is_left_to_the_probe(tmp_path: Path) -> None:
    assert read_tags(write_encoded(tmp_path / "take.webm", "webm", **TAGS)) == Tags()


@pytest.mark.parametrize(
    ("sample_rate", "channels", "seconds"), [(44100, 1, 1.0), (22050, 2, 0.5), (8000, 1, 2.0)]
)
def test_read_tags_stdlib_wav(
    sample_rate: int, channels: int, seconds: float, tmp_path: Path
) -> None:
    path = write_wav(
        tmp_path / "take.wav", seconds=seconds, sample_rate=sample_rate, channels=channels
    )
    tags = read_tags(path)
    assert tags.title is None and tags.recorded_at is None
    assert tags.duration_ms == round(seconds * 1000)
    assert (tags.sample_rate, tags.channels) == (sample_rate, channels)
    assert tags.bitrate == sample_rate * channels * 16


def test_read_tags_accepts_paths_strings_and_file_objects(tmp_path: Path) -> None:
    path = write_encoded(tmp_path / "take.flac", "flac", **TAGS)
    expected = read_tags(path)
    assert read_tags(str(path)) == expected
    with path.open("rb") as file:
        assert read_tags(file) == expected
    assert read_tags(io.BytesIO(path.read_bytes())) == expected


@pytest.mark.parametrize(
    ("fmt", "date", "expected"),
    [
        ("flac", "2023-10-15", datetime(2023, 10, 15, tzinfo=UTC)),
        ("mp3", "2023-10-15", datetime(2023, 10, 15, tzinfo=UTC)),
        ("m4a", "2023-10-15T20:30:00Z", RECORDED),
        ("ogg", "2023-10-15T22:30:00+02:00", RECORDED),
        ("flac", "2023", None),  # a bare year is no recording date
        ("mp3", "2023", None),
        ("m4a", "2023-10", None),
        ("wav", "yesterday", None),
    ],
)
def test_recording_dates(fmt: str, date: str, expected: datetime | None, tmp_path: Path) -> None:
    path = write_encoded(tmp_path / f"take{ENCODINGS[fmt][0]}", fmt, date=date)
    assert read_tags(path).recorded_at == expected


def with_chunk(wav: bytes, chunk_id: bytes, body: bytes) -> bytes:
    """The WAV with one more chunk after its data (padded), RIFF size updated."""
    data = wav[8:] + chunk_id + len(body).to_bytes(4, "little") + body + b"\x00" * (len(body) & 1)
    return b"RIFF" + len(data).to_bytes(4, "little") + data


def bext(day: str, time: str) -> bytes:
    return bytes(320) + day.encode() + time.encode() + bytes(264)


def info(**entries: bytes) -> bytes:
    body = b"INFO"
    for key, value in entries.items():
        body += key.encode() + len(value).to_bytes(4, "little") + value + b"\x00" * (len(value) & 1)
    return body


@pytest.mark.parametrize(
    ("chunks", "title", "recorded_at"),
    [
        ([(b"bext", bext("2023-10-15", "20:30:00"))], None, RECORDED),
        ([(b"bext", bext("2023:10:15", "20-30-00"))], None, RECORDED),  # free separators
        ([(b"bext", bext("2023-10-15", "\x00" * 8))], None, datetime(2023, 10, 15, tzinfo=UTC)),
        ([(b"bext", bext("\x00" * 10, "\x00" * 8))], None, None),
        # Odd-sized values are padded; ICRD dates it; Latin-1 text is read as such.
        ([(b"LIST", info(INAM=b"Groove", ICRD=b"2023-10-15 20:30"))], "Groove", RECORDED),
        ([(b"LIST", info(INAM=b"Gr\xfcn\x00"))], "Grün", None),
        # The recorder's bext wins over INFO's creation date, whatever the order.
        (
            [(b"LIST", info(ICRD=b"2001-01-01")), (b"bext", bext("2023-10-15", "20:30:00"))],
            None,
            RECORDED,
        ),
        (
            [(b"bext", bext("2023-10-15", "20:30:00")), (b"LIST", info(ICRD=b"2001-01-01"))],
            None,
            RECORDED,
        ),
        ([(b"LIST", b"adtl" + bytes(12))], None, None),  # a LIST that is not INFO
    ],
)
def test_wav_riff_metadata(
    chunks: list[tuple[bytes, bytes]],
    title: str | None,
    recorded_at: datetime | None,
    tmp_path: Path,
) -> None:
    data = write_wav(tmp_path / "take.wav").read_bytes()
    for chunk_id, body in chunks:
        data = with_chunk(data, chunk_id, body)
    tags = read_tags(io.BytesIO(data))
    assert (tags.title, tags.recorded_at) == (title, recorded_at)
    assert tags.duration_ms == 1000  # extra chunks do not disturb the stream facts


@pytest.mark.parametrize("kind", sorted(NOT_AUDIO))
def test_read_tags_on_garbage_is_empty(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "take.wav"
    path.write_bytes(NOT_AUDIO[kind])
    assert read_tags(path) == Tags()
    assert read_tags(io.BytesIO(NOT_AUDIO[kind])) == Tags()


@pytest.mark.parametrize("fmt", sorted(ENCODINGS))
@pytest.mark.parametrize("keep", [0, 12, 100, 1000])
def test_read_tags_on_truncated_files_does_not_raise(fmt: str, keep: int, tmp_path: Path) -> None:
    data = write_encoded(tmp_path / "take", fmt, **TAGS).read_bytes()[:keep]
    assert isinstance(read_tags(io.BytesIO(data)), Tags)


def test_read_tags_on_a_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_tags(tmp_path / "gone.wav")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-10-15T20:30:00", RECORDED),
        ("2023-10-15 20:30:00", RECORDED),
        ("2023-10-15T20:30", RECORDED),
        ("2023-10-15T20:30:00.250", RECORDED),
        ("2023-10-15T20:30:00Z", RECORDED),
        ("2023-10-15T22:30:00+02:00", RECORDED),
        ("2023-10-15T15:30:00-0500", RECORDED),
        ("2023-10-16T05:30:00+09:00", RECORDED),
        ("  2023-10-15T20:30:00  ", RECORDED),
        ("2023-10-15", datetime(2023, 10, 15, tzinfo=UTC)),
        ("2023/10/15", datetime(2023, 10, 15, tzinfo=UTC)),
        ("20231015", datetime(2023, 10, 15, tzinfo=UTC)),
        ("2023", None),
        ("2023-10", None),
        ("2023-02-30", None),
        ("2023-10-15T25:00:00", None),
        ("2023-10-15T20:30:00+24:00", None),
        ("2023-10/15", None),
        ("15.10.2023", None),
        ("October 15, 2023", None),
        ("", None),
    ],
)
def test_parse_tag_datetime(text: str, expected: datetime | None) -> None:
    assert parse_tag_datetime(text) == expected


# --- WAV and AIFF headers read without mutagen (audio.read_iff) ----------------------


def riff(*chunks: tuple[bytes, bytes], magic: bytes = b"RIFF", size: int | None = None) -> bytes:
    """A RIFF/WAVE file of these chunks (each padded to an even length)."""
    body = b"WAVE" + b"".join(
        chunk_id + len(data).to_bytes(4, "little") + data + b"\x00" * (len(data) & 1)
        for chunk_id, data in chunks
    )
    declared = len(body) if size is None else size
    return magic + declared.to_bytes(4, "little") + body


def fmt_chunk(
    *, tag: int = 1, channels: int = 2, rate: int = 48000, bits: int = 16, extensible: bool = False
) -> bytes:
    align = channels * bits // 8
    body = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align,
                       align, bits)  # fmt: skip
    if extensible:  # cbSize, valid bits, channel mask, sub-format GUID (PCM)
        body += struct.pack("<HHI", 22, bits, 3) + bytes.fromhex("0100000000001000800000aa00389b71")
    return body


def pcm(seconds: float, *, channels: int = 2, rate: int = 48000, bits: int = 16) -> bytes:
    return bytes(round(seconds * rate) * channels * bits // 8)


def both_ways(data: bytes) -> tuple[Tags, Tags]:
    """(the chunk walk's reading, mutagen's), the walk asserted to have read it."""
    fast = read_iff(io.BytesIO(data), head=data[:SNIFF_BYTES], size=len(data))
    assert fast is not None
    assert read_tags(io.BytesIO(data), "wav" if data[8:12] == b"WAVE" else "aiff") == fast
    return fast, _read_tags_mutagen(io.BytesIO(data))


@pytest.mark.parametrize(
    ("sample_rate", "channels", "seconds"), [(44100, 1, 1.0), (22050, 2, 0.5), (8000, 1, 2.0)]
)
def test_chunk_walk_reads_stdlib_wavs_as_mutagen_does(
    sample_rate: int, channels: int, seconds: float, tmp_path: Path
) -> None:
    path = write_wav(tmp_path / "t.wav", seconds=seconds, sample_rate=sample_rate,
                     channels=channels)  # fmt: skip
    fast, slow = both_ways(path.read_bytes())
    assert fast == slow
    assert (fast.duration_ms, fast.sample_rate, fast.channels) == (
        round(seconds * 1000),
        sample_rate,
        channels,
    )


def test_chunk_walk_reads_tagged_wavs_as_mutagen_does(tmp_path: Path) -> None:
    data = write_encoded(tmp_path / "take.wav", "wav", **TAGS).read_bytes()
    fast, slow = both_ways(data)
    assert fast == slow
    assert (fast.title, fast.artist, fast.recorded_at) == ("Grüne Groove", "Fuzz", RECORDED)
    # With a Broadcast WAV date and INFO text after the data, where recorders put them.
    data = with_chunk(data, b"bext", bext("2023-10-15", "20:30:00"))
    data = with_chunk(data, b"LIST", info(IPRD=b"Live tapes"))
    fast, slow = both_ways(data)
    assert fast == slow
    assert (fast.album, fast.recorded_at) == ("Live tapes", RECORDED)


@pytest.mark.parametrize(
    "chunks",
    [
        # Odd-sized chunks (padded) before the format and between format and data.
        [(b"JUNK", bytes(27)), (b"fmt ", fmt_chunk()), (b"bext", bytes(601)),
         (b"data", pcm(0.5))],
        # Data before format, a 'fact' chunk, an odd-sized data chunk (its pad byte).
        [(b"data", pcm(0.25) + b"\x01"), (b"fact", bytes(4)), (b"fmt ", fmt_chunk())],
        # WAVE_FORMAT_EXTENSIBLE, 24-bit, as most multitrack recorders write.
        [(b"fmt ", fmt_chunk(bits=24, extensible=True)), (b"data", pcm(0.5, bits=24))],
        # 32-bit float and a format chunk with an (empty) extension size.
        [(b"fmt ", fmt_chunk(tag=3, bits=32) + b"\x00\x00"), (b"data", pcm(0.5, bits=32))],
        # A LIST that is not INFO, an INFO with odd-sized values.
        [(b"fmt ", fmt_chunk()), (b"LIST", b"adtl" + bytes(13)), (b"data", pcm(0.2)),
         (b"LIST", info(INAM=b"Groove", IART=b"Fuzzy"))],
        # A chunk with an id mutagen calls invalid: both stop listing there.
        [(b"fmt ", fmt_chunk()), (b"\x00\x01\x02\x03", bytes(8)), (b"data", pcm(0.2))],
        # Mono 8-bit at 11,025 Hz.
        [(b"fmt ", fmt_chunk(channels=1, rate=11025, bits=8)),
         (b"data", pcm(1.0, channels=1, rate=11025, bits=8))],
    ],
    ids=["odd-chunks", "data-first", "extensible", "float", "lists", "invalid-id", "8-bit"],
)  # fmt: skip
def test_chunk_walk_on_crafted_wavs_agrees_with_mutagen(chunks: list[tuple[bytes, bytes]]) -> None:
    fast, slow = both_ways(riff(*chunks))
    assert fast == slow


def test_chunk_walk_facts_of_crafted_wavs() -> None:
    fast, _ = both_ways(riff((b"fmt ", fmt_chunk(bits=24, extensible=True)),
                             (b"data", pcm(0.5, bits=24))))  # fmt: skip
    assert (fast.duration_ms, fast.sample_rate, fast.channels, fast.bitrate) == (
        500,
        48000,
        2,
        48000 * 2 * 24,
    )
    fast, _ = both_ways(riff((b"fmt ", fmt_chunk()), (b"\x00bad", bytes(8)),
                                (b"data", pcm(0.2))))  # fmt: skip
    assert fast.duration_ms is None and fast.sample_rate == 48000  # data is past the stop


def test_chunk_walk_rf64_reads_the_sizes_in_ds64() -> None:
    audio_bytes = pcm(0.75)
    ds64 = struct.pack("<QQQI", 0, len(audio_bytes), len(audio_bytes) // 4, 0)
    for magic in (b"RF64", b"BW64"):
        data = riff((b"ds64", ds64), (b"fmt ", fmt_chunk()), (b"data", audio_bytes),
                    magic=magic, size=0xFFFFFFFF)  # fmt: skip
        # The 32-bit data size says 'see ds64'.
        data = data.replace(b"data" + len(audio_bytes).to_bytes(4, "little"),
                            b"data\xff\xff\xff\xff")  # fmt: skip
        assert sniff_format(data[:SNIFF_BYTES]) == "wav"
        tags = read_tags(io.BytesIO(data), "wav")
        assert (tags.duration_ms, tags.sample_rate, tags.channels) == (750, 48000, 2)
        assert _read_tags_mutagen(io.BytesIO(data)) == Tags()  # mutagen cannot read RF64


def test_chunk_walk_counts_only_the_data_a_cut_off_file_holds() -> None:
    whole = riff((b"fmt ", fmt_chunk()), (b"data", pcm(1.0)))
    cut = whole[: len(whole) - len(pcm(0.5))]  # the recorder stopped half way
    assert read_tags(io.BytesIO(cut), "wav").duration_ms == 500
    # A writer that never filled the sizes in (0, or 0xFFFFFFFF when streaming).
    for unknown in (0, 0xFFFFFFFF):
        unfilled = whole.replace(
            b"data" + len(pcm(1.0)).to_bytes(4, "little"), b"data" + unknown.to_bytes(4, "little")
        )
        assert read_tags(io.BytesIO(unfilled), "wav").duration_ms == 1000


@pytest.mark.parametrize("keep", [0, 4, 11, 12, 19, 20, 27, 35, 36, 43, 44, 100])
def test_chunk_walk_on_truncated_headers_does_not_raise(keep: int) -> None:
    data = riff((b"fmt ", fmt_chunk()), (b"LIST", info(INAM=b"x")), (b"data", pcm(0.1)))[:keep]
    tags = read_tags(io.BytesIO(data), "wav")
    assert isinstance(tags, Tags)
    assert read_iff(io.BytesIO(data), size=len(data)) in (None, tags)


def test_chunk_walk_leaves_id3_and_compressed_wavs_to_mutagen(tmp_path: Path) -> None:
    from mutagen.id3 import TIT2
    from mutagen.wave import WAVE

    path = write_wav(tmp_path / "take.wav", seconds=0.5)
    tagged = WAVE(path)
    tagged.add_tags()
    tagged.tags.add(TIT2(encoding=3, text="From ID3"))
    tagged.save()
    assert read_iff(io.BytesIO(path.read_bytes())) is None
    tags = read_tags(path, "wav")
    assert (tags.title, tags.duration_ms) == ("From ID3", 500)
    adpcm = riff((b"fmt ", fmt_chunk(tag=0x11, bits=4)), (b"data", bytes(1024)))
    assert read_iff(io.BytesIO(adpcm)) is None
    assert read_tags(io.BytesIO(adpcm), "wav") == _read_tags_mutagen(io.BytesIO(adpcm))


def aiff(*chunks: tuple[bytes, bytes], kind: bytes = b"AIFF") -> bytes:
    body = kind + b"".join(
        chunk_id + len(data).to_bytes(4, "big") + data + b"\x00" * (len(data) & 1)
        for chunk_id, data in chunks
    )
    return b"FORM" + len(body).to_bytes(4, "big") + body


def comm(channels: int, frames: int, bits: int, rate: bytes, extra: bytes = b"") -> bytes:
    return struct.pack(">hLh", channels, frames, bits) + rate + extra


RATE_44100 = bytes.fromhex("400eac44000000000000")  # 80-bit extended 44100.0
RATE_48000 = bytes.fromhex("400ebb80000000000000")


@pytest.mark.parametrize(
    "chunks",
    [
        [(b"COMM", comm(2, 44100, 16, RATE_44100)), (b"SSND", bytes(8 + 44100 * 4))],
        [(b"NAME", b"odd"), (b"COMM", comm(1, 24000, 24, RATE_48000)), (b"SSND", bytes(8))],
        [(b"COMM", comm(2, 4800, 16, RATE_48000, b"NONE\x0enot compressed\x00"))],
    ],
    ids=["stereo", "odd-chunk", "aifc-comm"],
)
def test_chunk_walk_reads_aiff_as_mutagen_does(chunks: list[tuple[bytes, bytes]]) -> None:
    for kind in (b"AIFF", b"AIFC"):
        fast, slow = both_ways(aiff(*chunks, kind=kind))
        assert fast == slow
        assert fast.sample_rate in (44100, 48000) and fast.duration_ms in (1000, 500, 100)


def test_chunk_walk_leaves_aiff_with_id3_to_mutagen(tmp_path: Path) -> None:
    data = write_encoded(tmp_path / "take.aiff", "aiff", **TAGS).read_bytes()
    assert read_iff(io.BytesIO(data)) is None
    assert read_tags(io.BytesIO(data), "aiff").title == "Grüne Groove"
    assert read_iff(io.BytesIO(aiff((b"COMM", comm(2, 10, 16, b"\x7f\xff" + bytes(8)))))) is None
