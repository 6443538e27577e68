"""Audio sniffing and tag reading, on real files encoded by ffmpeg and on crafted bytes."""

from __future__ import annotations

import io
import random
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.library.audio import (
    AUDIO_EXTENSIONS,
    SNIFF_BYTES,
    Tags,
    has_audio_extension,
    is_audio,
    parse_tag_datetime,
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
