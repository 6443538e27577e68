"""transcode() on generated audio: the HLS playlist and its segments, the MP3, the
loudness-normalised rendition, progress, cancelling, failures and odd inputs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from backend.media.analysis import analyze
from backend.media.decode import MediaError, find_ffmpeg
from backend.media.probe import probe
from backend.media.transcode import (
    LoudnessMeasurement,
    LoudnessTarget,
    TranscodeCancelled,
    TranscodeResult,
    transcode,
)
from tests import media_fixtures as mf

SECONDS = 20


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("transcode")
    return mf.write_wav_blocks(folder / "take.wav", mf.rehearsal_blocks(SECONDS), 48000, 2)


@pytest.fixture(scope="module")
def transcoded(rehearsal: Path) -> TranscodeResult:
    return transcode(rehearsal, rehearsal.parent / "out")


def playlist_entries(playlist: Path) -> list[tuple[float, str]]:
    """(duration, uri) per segment of an HLS media playlist."""
    lines = playlist.read_text().splitlines()
    return [
        (float(re.match(r"#EXTINF:([0-9.]+),", line).group(1)), lines[i + 1])  # type: ignore[union-attr]
        for i, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]


def joined_segments(folder: Path, uris: list[str], target: Path) -> Path:
    """init segment + media segments: the fragmented MP4 a player's buffer holds."""
    with target.open("wb") as out:
        for name in ["init.mp4", *uris]:
            out.write((folder / name).read_bytes())
    return target


# --- HLS -----------------------------------------------------------------------------


def test_hls_playlist_is_a_vod_fmp4_playlist(transcoded: TranscodeResult) -> None:
    assert transcoded.hls_playlist is not None
    text = transcoded.hls_playlist.read_text()
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines
    assert "#EXT-X-TARGETDURATION:6" in lines
    assert '#EXT-X-MAP:URI="init.mp4"' in lines
    assert lines[-1] == "#EXT-X-ENDLIST"
    version = int(re.search(r"#EXT-X-VERSION:(\d+)", text).group(1))  # type: ignore[union-attr]
    assert version >= 6  # EXT-X-MAP without I-frames-only needs 6


def test_hls_segments_are_six_seconds_and_sum_to_the_input(
    transcoded: TranscodeResult,
) -> None:
    assert transcoded.hls_playlist is not None
    entries = playlist_entries(transcoded.hls_playlist)
    durations = [duration for duration, _ in entries]
    assert len(durations) == 4
    assert all(d == pytest.approx(6.0, abs=0.05) for d in durations[:-1])
    assert sum(durations) == pytest.approx(SECONDS, abs=0.05)
    for _, uri in entries:
        assert "/" not in uri and (transcoded.hls_playlist.parent / uri).is_file()


def test_hls_segments_decode_as_opus_at_160_kbps(
    transcoded: TranscodeResult, tmp_path: Path
) -> None:
    assert transcoded.hls_playlist is not None
    folder = transcoded.hls_playlist.parent
    entries = playlist_entries(transcoded.hls_playlist)
    for index, (duration, uri) in enumerate(entries):  # each one alone, after the init
        alone = probe(joined_segments(folder, [uri], tmp_path / f"seg{index}.mp4"))
        assert alone.codec == "opus" and alone.sample_rate == 48000 and alone.channels == 2
        assert alone.duration_ms == pytest.approx(duration * 1000, abs=50)
    whole = probe(joined_segments(folder, [uri for _, uri in entries], tmp_path / "all.mp4"))
    assert whole.duration_ms == pytest.approx(SECONDS * 1000, abs=50)
    media_bytes = sum((folder / uri).stat().st_size for _, uri in entries)
    assert 140_000 < media_bytes * 8 / SECONDS < 180_000  # VBR around 160 kbps


def test_hls_playlist_plays_through_ffmpeg(transcoded: TranscodeResult) -> None:
    assert transcoded.hls_playlist is not None
    result = analyze(transcoded.hls_playlist)  # ffmpeg's HLS demuxer follows the URIs
    assert result.duration_ms == pytest.approx(SECONDS * 1000, abs=50)
    assert result.bpm is not None and abs(result.bpm - 120) <= 1


# --- MP3 -----------------------------------------------------------------------------


def test_mp3_fallback_decodes_with_the_right_duration(transcoded: TranscodeResult) -> None:
    assert transcoded.mp3 is not None
    result = probe(transcoded.mp3)
    assert (result.codec, result.sample_rate, result.channels) == ("mp3", 48000, 2)
    assert result.duration_ms == pytest.approx(SECONDS * 1000, abs=50)


def test_files_lists_what_was_written(transcoded: TranscodeResult) -> None:
    out = transcoded.output_dir
    written = {p.relative_to(out) for p in out.rglob("*") if p.is_file()}
    assert set(transcoded.files) == written
    assert Path("fallback.mp3") in written and Path("hls/index.m3u8") in written
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no work folder left


# --- loudness normalisation ----------------------------------------------------------


def test_normalized_rendition_reaches_the_target(tmp_path: Path) -> None:
    quiet = 0.1 * mf.stereo(mf.chord_progression("A", "minor", repeats=2))  # ~-35 LUFS
    wav = mf.write_wav(tmp_path / "quiet.wav", quiet, 44100)
    result = transcode(wav, tmp_path / "out", hls=False, mp3=False, normalized=True)
    assert result.hls_playlist is None and result.mp3 is None
    assert result.loudness is not None and result.loudness.integrated_lufs < -30
    assert result.normalization == "linear"
    assert result.normalized_playlist is not None
    measured = analyze(result.normalized_playlist)
    assert measured.loudness_lufs == pytest.approx(-16.0, abs=0.5)
    assert measured.true_peak_dbtp is not None and measured.true_peak_dbtp <= -1.0


def test_normalized_with_a_given_measurement_and_target(tmp_path: Path) -> None:
    quiet = 0.1 * mf.stereo(mf.chord_progression("C", "major", repeats=1))
    wav = mf.write_wav(tmp_path / "quiet.wav", quiet, 48000)
    first = transcode(wav, tmp_path / "a", hls=False, mp3=False, normalized=True)
    target = LoudnessTarget(integrated_lufs=-20.0)
    again = transcode(
        wav,
        tmp_path / "b",
        hls=False,
        mp3=False,
        normalized=True,
        measured=first.loudness,
        target=target,
    )
    assert again.loudness == first.loudness
    assert again.normalized_playlist is not None
    measured = analyze(again.normalized_playlist)
    assert measured.loudness_lufs == pytest.approx(-20.0, abs=0.5)


def test_normalized_from_the_analysis_measurement(tmp_path: Path) -> None:
    quiet = 0.1 * mf.stereo(mf.chord_progression("D", "minor", repeats=1))
    wav = mf.write_wav(tmp_path / "quiet.wav", quiet, 48000)
    found = analyze(wav)
    measured = LoudnessMeasurement.from_analysis(
        integrated_lufs=found.loudness_lufs,
        range_lu=found.loudness_range_lu,
        true_peak_dbtp=found.true_peak_dbtp,
    )
    result = transcode(
        wav, tmp_path / "out", hls=False, mp3=False, normalized=True, measured=measured
    )
    assert result.normalization == "linear" and result.normalized_playlist is not None
    assert analyze(result.normalized_playlist).loudness_lufs == pytest.approx(-16.0, abs=0.5)


def test_silence_is_not_amplified(tmp_path: Path) -> None:
    wav = mf.write_wav(tmp_path / "silence.wav", np.zeros((48000 * 3, 2)), 48000)
    result = transcode(wav, tmp_path / "out", normalized=True)
    assert result.normalization == "none"
    assert result.normalized_playlist is not None
    assert analyze(result.normalized_playlist).loudness_lufs is None


# --- progress, cancel, failure -------------------------------------------------------


def test_progress_rises_to_one(rehearsal: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    transcode(rehearsal, tmp_path / "out", normalized=True, progress=seen.append)
    assert seen[-1] == 1.0
    assert seen == sorted(seen) and all(0 <= value <= 1 for value in seen)
    assert len(seen) >= 3


def test_cancel_stops_and_leaves_nothing(rehearsal: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    asked: list[bool] = []

    def cancel() -> bool:
        asked.append(True)
        return len(asked) > 2  # let ffmpeg start, then stop it

    with pytest.raises(TranscodeCancelled):
        transcode(rehearsal, tmp_path / "new", normalized=True, progress=seen.append, cancel=cancel)
    assert not (tmp_path / "new").exists()
    assert not seen or seen[-1] < 1.0


def test_cancel_keeps_an_earlier_transcode(rehearsal: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = transcode(rehearsal, out, mp3=False)
    listing = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(TranscodeCancelled):
        transcode(rehearsal, out, cancel=lambda: True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == listing
    assert before.hls_playlist is not None and before.hls_playlist.is_file()


def test_a_new_transcode_replaces_the_old_one(rehearsal: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "hls").mkdir(parents=True)
    (out / "hls" / "seg-00099.m4s").write_bytes(b"stale")
    transcode(rehearsal, out, mp3=False)
    assert not (out / "hls" / "seg-00099.m4s").exists()
    assert (out / "hls" / "index.m3u8").is_file()


def test_odd_folder_and_file_names(
    rehearsal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = tmp_path / "take:2 50% final"
    odd.mkdir()
    source = odd / "take:2 50%.wav"
    shutil.copyfile(rehearsal, source)
    monkeypatch.chdir(odd)
    result = transcode(Path(source.name), Path("out:1"), probed=probe(source))
    assert result.hls_playlist is not None
    assert len(playlist_entries(result.hls_playlist)) == 4
    assert (odd / "out:1" / "hls" / "seg-00000.m4s").is_file()


def test_failure_is_a_media_error_and_leaves_nothing(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n")
    with pytest.raises(MediaError, match=r"not an audio file: notes\.wav"):
        transcode(text, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_messages_use_the_given_name(tmp_path: Path) -> None:
    text = tmp_path / "scratch-1234"
    text.write_text("not audio at all\n")
    with pytest.raises(MediaError, match=r"not an audio file: take 2\.flac"):
        transcode(text, tmp_path / "out", name="take 2.flac")


def test_damaged_source_mid_transcode(tmp_path: Path) -> None:
    wav = mf.write_wav(tmp_path / "take.wav", mf.stereo(mf.chord_progression("C", "major")), 44100)
    flac = mf.encode(wav, tmp_path / "take.flac", "flac")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(flac.read_bytes()[: flac.stat().st_size // 3])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(MediaError, match=r"FLAC stream in cut\.flac"):
        transcode(cut, out)
    assert list(out.iterdir()) == []
    salvaged = transcode(cut, out, strict=False)  # what could be decoded
    assert salvaged.mp3 is not None and 0 < probe(salvaged.mp3).duration_ms < 16_000


def test_no_ffmpeg_left_running_after_cancel(rehearsal: Path, tmp_path: Path) -> None:
    ffmpeg = Path(find_ffmpeg()).name
    with pytest.raises(TranscodeCancelled):
        transcode(rehearsal, tmp_path / "out", cancel=lambda: True)
    children = subprocess.run(
        ["ps", "-o", "args=", "--ppid", str(os.getpid())], capture_output=True, text=True
    )
    assert ffmpeg not in children.stdout


# --- odd inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "sample_rate", "channels", "opus_channels", "mp3_rate"),
    [
        (1.0, 48000, 2, 2, 48000),
        (3.0, 44100, 1, 1, 44100),
        (3.0, 8000, 1, 1, 48000),
        (3.0, 96000, 2, 2, 48000),
        (3.0, 48000, 6, 2, 48000),
    ],
)
def test_short_mono_low_high_rate_and_surround(
    tmp_path: Path,
    seconds: float,
    sample_rate: int,
    channels: int,
    opus_channels: int,
    mp3_rate: int,
) -> None:
    mono = mf.tone(440, -12, seconds, sample_rate)
    wav = mf.write_wav(
        tmp_path / "take.wav", np.repeat(mono[:, None], channels, axis=1), sample_rate
    )
    result = transcode(wav, tmp_path / "out")
    assert result.hls_playlist is not None and result.mp3 is not None
    entries = playlist_entries(result.hls_playlist)
    assert sum(d for d, _ in entries) == pytest.approx(seconds, abs=0.05)
    joined = joined_segments(
        result.hls_playlist.parent, [u for _, u in entries], tmp_path / "a.mp4"
    )
    hls = probe(joined)
    assert (hls.codec, hls.sample_rate, hls.channels) == ("opus", 48000, opus_channels)
    mp3 = probe(result.mp3)
    assert (mp3.sample_rate, mp3.channels) == (mp3_rate, opus_channels)
    assert mp3.duration_ms == pytest.approx(seconds * 1000, abs=50)
    shutil.rmtree(tmp_path / "out")
