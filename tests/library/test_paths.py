"""Path rules: which session, track and label a file's place in the folder tree gives."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest

from backend.library.paths import (
    MAX_TITLE_LENGTH,
    UNTITLED,
    RecordingPlace,
    is_hidden,
    parse_session_date,
    place_recording,
)

OCT_15 = date(2023, 10, 15)


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("231015", OCT_15),
        ("20231015", OCT_15),
        ("2023-10-15", OCT_15),
        ("000101", date(2000, 1, 1)),
        ("991231", date(2099, 12, 31)),
        ("240229", date(2024, 2, 29)),  # leap day
        ("19991231", date(1999, 12, 31)),
        ("1900-01-01", date(1900, 1, 1)),
        # The right shape, but no calendar date.
        ("20231399", None),
        ("231332", None),
        ("000000", None),
        ("2023-02-30", None),
        ("230229", None),  # 2023 is no leap year
        ("20231000", None),
        ("2023-00-10", None),
        # Four-digit years far from now are numbers, not sessions.
        ("10101010", None),
        ("21000101", None),
        ("1899-12-31", None),
        # Not the shape at all.
        ("1234567", None),
        ("12345", None),
        ("123456789", None),
        ("2023-1-5", None),
        ("2023/10/15", None),
        ("2023_10_15", None),
        ("15.10.2023", None),
        ("231015 gig", None),
        (" 231015", None),
        ("gig-2023-10-15", None),
        ("\uff12\uff13\uff11\uff10\uff11\uff15", None),  # full-width digits
        ("\u0662\u0663\u0661\u0660\u0661\u0665", None),  # Arabic-Indic digits
        ("", None),
        ("groove", None),
    ],
)
def test_parse_session_date(segment: str, expected: date | None) -> None:
    assert parse_session_date(segment) == expected


@pytest.mark.parametrize(
    ("path", "session", "track", "label"),
    [
        # The documented examples.
        ("bands/fuzz/231015/groove/take2.wav", OCT_15, "groove", "take2"),
        ("231015/groove/take2.wav", OCT_15, "groove", "take2"),
        ("231022/new_song.m4a", date(2023, 10, 22), "new song", "new song"),
        ("jam.wav", None, "jam", "jam"),
        ("groove/take1.wav", None, "groove", "take1"),
        # Deeper nesting below a session: the parent folder names the track.
        ("231015/set1/groove/take2.wav", OCT_15, "groove", "take2"),
        ("bands/fuzz/2023-10-15/set 1/Big_Riff/take 3.flac", OCT_15, "Big Riff", "take 3"),
        # Folders above the session never name the track.
        ("bands/fuzz/231015/x.wav", OCT_15, "x", "x"),
        ("bands/fuzz/20231015/loose_jam.mp3", OCT_15, "loose jam", "loose jam"),
        # No date anywhere: the parent still names the track.
        ("bands/fuzz/x.wav", None, "fuzz", "x"),
        # Several dates: the one closest to the file.
        ("2022-01-01/231015/groove/take.wav", OCT_15, "groove", "take"),
        ("231015/220101/take.wav", date(2022, 1, 1), "take", "take"),
        # A folder that only looks like a date is a track.
        ("20231399/take.wav", None, "20231399", "take"),
        ("231015/2023-02-30/take.wav", OCT_15, "2023-02-30", "take"),
        ("231015 gig/take.wav", None, "231015 gig", "take"),
        # The file's own name never dates it.
        ("231015.wav", None, "231015", "231015"),
        ("groove/231015.wav", None, "groove", "231015"),
        # Extensions: only the last one goes; a name without one is its own stem.
        ("231015/groove/take.2.wav", OCT_15, "groove", "take.2"),
        ("231015/groove/take2", OCT_15, "groove", "take2"),
        ("231015/groove/take2.", OCT_15, "groove", "take2"),
        ("231015/groove/TAKE2.WAV", OCT_15, "groove", "TAKE2"),
        # Readable: underscores and runs of whitespace become one space.
        ("231015/new__song/take_1.wav", OCT_15, "new song", "take 1"),
        ("231015/  groove  /take\t1.wav", OCT_15, "groove", "take 1"),
        ("231015/new-song/take-1.wav", OCT_15, "new-song", "take-1"),
        # Backslashes are characters of a name, not separators.
        ("231015\\groove\\take2.wav", None, "231015\\groove\\take2", "231015\\groove\\take2"),
        ("231015/a\\b/take.wav", OCT_15, "a\\b", "take"),
        # Empty and '.' segments are ignored; a leading slash too.
        ("/231015//groove/./take2.wav", OCT_15, "groove", "take2"),
        ("./jam.wav", None, "jam", "jam"),
        # Blank names: the stem falls back to UNTITLED, a blank folder names no track.
        ("231015/groove/ .wav", OCT_15, "groove", UNTITLED),
        ("231015/_/take.wav", OCT_15, "take", "take"),
        ("231015/groove/___.wav", OCT_15, "groove", UNTITLED),
        ("231015/ .wav", OCT_15, UNTITLED, UNTITLED),
        # Unicode is kept (and NFC-normalised, see below).
        ("231015/Café del Mar/prise 1.wav", OCT_15, "Café del Mar", "prise 1"),
        ("231015/Грув/дубль.ogg", OCT_15, "Грув", "дубль"),
        ("231015/🎸 riff/take.wav", OCT_15, "🎸 riff", "take"),
    ],
)
def test_place_recording(path: str, session: date | None, track: str, label: str) -> None:
    assert place_recording(path) == RecordingPlace(session, track, label)


def test_names_are_nfc_normalised() -> None:
    decomposed = unicodedata.normalize("NFD", "231015/Café/Tōkyō take.wav")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    place = place_recording(decomposed)
    assert place.track_title == unicodedata.normalize("NFC", "Café")
    assert place.label == unicodedata.normalize("NFC", "Tōkyō take")
    assert place == place_recording("231015/Café/Tōkyō take.wav")


@pytest.mark.parametrize("name", ["x" * 500, "x " * 250, "é" * 300, "_" * 199 + "ab" * 10])
def test_long_names_are_capped(name: str) -> None:
    place = place_recording(f"231015/{name}/{name}.wav")
    for text in (place.track_title, place.label):
        assert 0 < len(text) <= MAX_TITLE_LENGTH
        assert text == text.strip()
        assert name.replace("_", " ").strip().startswith(text)


@pytest.mark.parametrize("path", ["", "/", "231015/", "groove/", ".", "./", "//"])
def test_paths_naming_no_file_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="not a file path"):
        place_recording(path)


@pytest.mark.parametrize(
    ("path", "hidden"),
    [
        ("231015/groove/take2.wav", False),
        ("jam.wav", False),
        ("./jam.wav", False),
        ("231015/groove/take.2.wav", False),
        ("231015/groove/take2.", False),
        (".DS_Store", True),
        ("231015/.DS_Store", True),
        ("231015/groove/._take2.wav", True),  # macOS AppleDouble resource fork
        (".git/objects/x.wav", True),
        ("bands/.trash/231015/take.wav", True),
        ("231015/.hidden folder/take.wav", True),
        ("../outside.wav", True),
        ("231015/.wav", True),
        ("231015\\.hidden\\take.wav", False),  # one name, starting with '2'
    ],
)
def test_is_hidden(path: str, hidden: bool) -> None:
    assert is_hidden(path) is hidden
