"""probe() on generated audio: every format's facts, tags and cover art, damaged and
odd files. Signals are a few seconds long; the whole module runs in a few seconds."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from backend.media.decode import MediaError
from backend.media.probe import ProbeResult, probe
from tests import media_fixtures as mf

SECONDS = 3.0

# fmt (a key of ENCODINGS) -> (format, codec) as probe names them.
FORMATS = {
    "wav": ("wav", "pcm_s16le"),
    "aiff": ("aiff", "pcm_s16be"),
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "mp3"),
    "m4a": ("m4a", "aac"),
    "aac": ("aac", "aac"),
    "ogg": ("ogg", "vorbis"),
    "opus": ("opus", "opus"),
    "webm": ("webm", "opus"),
}


@pytest.fixture(scope="module")
def source_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("probe")
    return mf.write_wav(folder / "source.wav", mf.stereo(mf.tone(440, -6, SECONDS)), 48000)


def encoded(source: Path, folder: Path, fmt: str) -> Path:
    suffix = mf.ENCODINGS[fmt][0]
    return mf.encode(source, folder / f"take{suffix}", fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_probes_with_its_facts(source_wav: Path, tmp_path: Path, fmt: str) -> None:
    result = probe(encoded(source_wav, tmp_path, fmt))
    assert (result.format, result.codec) == FORMATS[fmt]
    assert abs(result.duration_ms - SECONDS * 1000) <= 50
    assert (result.sample_rate, result.channels) == (48000, 2)
    assert result.bitrate is not None and result.bitrate > 0
    if fmt in ("wav", "aiff"):
        assert result.bitrate == 48000 * 2 * 16
    if fmt in ("mp3", "m4a"):  # encoded at 128k
        assert 100_000 < result.bitrate < 160_000


def test_media_recorder_webm_without_a_duration_is_measured(
    source_wav: Path, tmp_path: Path
) -> None:
    webm = mf.media_recorder_webm(source_wav, tmp_path / "recording.webm")
    for verify in (True, False):  # a quick look has to measure it too
        result = probe(webm, verify=verify)
        assert (result.format, result.codec) == ("webm", "opus")
        assert abs(result.duration_ms - SECONDS * 1000) <= 50


def test_quick_probe_agrees_with_the_measured_one(source_wav: Path, tmp_path: Path) -> None:
    flac = encoded(source_wav, tmp_path, "flac")
    assert probe(flac, verify=False) == probe(flac)


def test_result_is_frozen(source_wav: Path) -> None:
    result = probe(source_wav)
    assert isinstance(result, ProbeResult)
    with pytest.raises(AttributeError):
        result.duration_ms = 1  # type: ignore[misc]


# --- tags and cover art --------------------------------------------------------------

COVER = mf.png_image()


@pytest.mark.parametrize("fmt", ["mp3", "aiff", "wav", "flac", "m4a", "ogg", "opus"])
def test_tags_and_cover_round_trip(source_wav: Path, tmp_path: Path, fmt: str) -> None:
    path = mf.write_tags(
        encoded(source_wav, tmp_path, fmt),
        title="Groove (take 2)",
        artist="The Fuzz",
        album="Rehearsals",
        date="2023-10-15",
        cover=COVER,
    )
    result = probe(path)
    assert result.tags.title == "Groove (take 2)"
    assert result.tags.artist == "The Fuzz"
    assert result.tags.album == "Rehearsals"
    assert result.tags.recorded == date(2023, 10, 15)
    assert result.cover is not None
    assert (result.cover.data, result.cover.mime) == (COVER, "image/png")


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a", "opus"])
def test_a_recording_time_is_a_utc_datetime(source_wav: Path, tmp_path: Path, fmt: str) -> None:
    path = mf.write_tags(
        encoded(source_wav, tmp_path, fmt),
        title="t",
        artist="a",
        album="b",
        date="2023-10-15T20:30:00",
    )
    result = probe(path)
    assert result.tags.recorded == datetime(2023, 10, 15, 20, 30, tzinfo=UTC)
    assert result.cover is None


def test_riff_info_and_webm_tags_written_by_ffmpeg(tmp_path: Path) -> None:
    from tests.audio_fixtures import write_encoded

    for fmt in ("wav", "webm"):  # RIFF INFO (INAM, IART, ICRD); Matroska tags
        path = write_encoded(
            tmp_path / f"t.{fmt}", fmt, title="Intro", artist="Kim", date="2024-03-01"
        )
        result = probe(path)
        assert (result.tags.title, result.tags.artist) == ("Intro", "Kim")
        assert result.tags.recorded == date(2024, 3, 1)


def test_broadcast_wav_origination_time(tmp_path: Path) -> None:
    wav = mf.write_wav(tmp_path / "zoom.wav", mf.tone(440, -6, 1), 48000)
    result = probe(mf.add_bext(wav, origination="2023-10-15T20:30:00"))
    assert result.tags.recorded == datetime(2023, 10, 15, 20, 30, tzinfo=UTC)


def test_untagged_file_has_empty_tags(source_wav: Path) -> None:
    result = probe(source_wav)
    assert (result.tags.title, result.tags.recorded, result.cover) == (None, None, None)


# --- files that are not what they seem -----------------------------------------------


def test_text_renamed_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("setlist: intro, groove, outro\n")
    with pytest.raises(MediaError, match=r"^not an audio file: notes\.wav"):
        probe(path)


def test_messages_name_the_file_as_people_know_it(tmp_path: Path) -> None:
    path = tmp_path / "upload-3f2a.tmp"
    path.write_text("not audio")
    with pytest.raises(MediaError, match=r"^not an audio file: Groove take 2\.wav"):
        probe(path, name="Groove take 2.wav")


def test_truncated_flac(tmp_path: Path) -> None:
    wav = mf.write_wav(tmp_path / "take.wav", mf.stereo(mf.chord_progression("C", "major")), 44100)
    flac = mf.encode(wav, tmp_path / "take.flac", "flac")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(flac.read_bytes()[: flac.stat().st_size // 3])
    with pytest.raises(MediaError, match=r"truncated FLAC stream in cut\.flac"):
        probe(cut)


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_truncated_pcm(tmp_path: Path, fmt: str) -> None:
    wav = mf.write_wav(tmp_path / "source.wav", mf.tone(440, -6, 4), 48000)
    whole = encoded(wav, tmp_path, fmt)
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(MediaError, match=rf"truncated PCM stream in cut\.{fmt}: only 2\.0 s"):
        probe(cut)


def test_empty_missing_and_folder(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").touch()
    with pytest.raises(MediaError, match=r"empty file \(0 bytes\): empty\.wav"):
        probe(tmp_path / "empty.wav")
    with pytest.raises(MediaError, match=r"file not found: gone\.wav"):
        probe(tmp_path / "gone.wav")
    with pytest.raises(MediaError, match="a folder, not a file"):
        probe(tmp_path)


def test_video_only(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"no audio stream in clip\.mp4 \(video only\)"):
        probe(mf.video_only(tmp_path / "clip.mp4"))


def test_video_with_sound_probes_its_audio(source_wav: Path, tmp_path: Path) -> None:
    import subprocess

    from backend.media.decode import find_ffmpeg

    clip = tmp_path / "phone.mp4"
    command = [find_ffmpeg(), "-nostdin", "-loglevel", "error", "-f", "lavfi"]
    command += ["-i", f"testsrc=duration={SECONDS}:size=64x64", "-i", str(source_wav)]
    command += ["-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(clip)]
    subprocess.run(command, check=True, timeout=60)
    result = probe(clip)
    assert (result.format, result.codec, result.channels) == ("mp4", "aac", 2)
    assert abs(result.duration_ms - SECONDS * 1000) <= 50


# --- odd but real recordings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "sample_rate", "channels"),
    [(1.0, 48000, 2), (2.0, 44100, 1), (2.0, 8000, 1), (2.0, 96000, 2), (2.0, 48000, 6)],
)
def test_short_mono_low_high_rate_and_surround(
    tmp_path: Path, seconds: float, sample_rate: int, channels: int
) -> None:
    mono = mf.tone(440, -6, seconds, sample_rate)
    samples = np.repeat(mono[:, None], channels, axis=1)
    wav = mf.write_wav(tmp_path / "take.wav", samples, sample_rate)
    for path in (wav, mf.encode(wav, tmp_path / "take.flac", "flac")):
        result = probe(path)
        assert (result.sample_rate, result.channels) == (sample_rate, channels)
        assert abs(result.duration_ms - seconds * 1000) <= 50


def test_silence(tmp_path: Path) -> None:
    wav = mf.write_wav(tmp_path / "silence.wav", np.zeros((48000 * 2, 2)), 48000)
    result = probe(mf.encode(wav, tmp_path / "silence.opus", "opus"))
    assert (result.codec, result.channels) == ("opus", 2)
    assert abs(result.duration_ms - 2000) <= 50


def test_a_few_samples(tmp_path: Path) -> None:
    wav = mf.write_wav(tmp_path / "blip.wav", mf.tone(440, -6, 0.001), 48000)
    assert probe(wav).duration_ms == 1
