"""Analyse a recording: tempo, key, EBU R128 loudness, true peak, waveform peaks.

``analyze(path)`` decodes the file once (one ffmpeg process, see decode.py) into two
PCM streams read chunk by chunk, and feeds every analyser as the chunks arrive:

    file's own rate and channels ─┬─ loudness.py  integrated loudness, loudness range
                                  ├─ peak.py      true peak
                                  └─ waveform.py  audiowaveform peaks, 3 zoom levels
    44.1 kHz mono ────────────────┬─ tempo.py     BPM and confidence
                                  └─ key.py       key, scale and strength

Nothing holds the whole signal; memory stays flat whatever the length of the file
(3 hours at 48 kHz stereo: about 40 MB above the interpreter's own).

Degenerate input gives ``None`` for what cannot be measured rather than a made-up
number: silence (nothing above -70 LUFS) has no loudness, tempo or key, digital
silence no true peak either; under 0.4 s there is no loudness, under 3 s no loudness
range, under 6 s (or without rhythmic onsets, e.g. a held tone) no tempo. A file that
cannot be decoded, is damaged, or holds no audio raises ``MediaError`` with a message
for people ("not an audio file: x.wav", "truncated or corrupt FLAC stream in x.flac").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.media.analysis import key as key_module
from backend.media.analysis.key import KeyEstimator
from backend.media.analysis.loudness import LoudnessMeter, channel_weights
from backend.media.analysis.peak import TruePeakMeter
from backend.media.analysis.tempo import TempoEstimator
from backend.media.analysis.waveform import ZOOM_LEVELS, Waveform, WaveformBuilder
from backend.media.decode import CHUNK_FRAMES, Decoding, MediaError, PcmFormat

__all__ = ["AnalysisResult", "MediaError", "Waveform", "analyze"]

# Tempo and key run on 44.1 kHz mono, the rate RhythmExtractor2013 and KeyExtractor
# are tuned for; ffmpeg resamples and downmixes in the same decode.
ANALYSIS_RATE = key_module.SAMPLE_RATE  # == tempo.SAMPLE_RATE


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    duration_ms: int
    sample_rate: int  # the file's own
    channels: int  # the file's own
    bpm: float | None
    bpm_confidence: float | None  # TempoTapMaxAgreement's 0..5.32; > 3.5 is excellent
    key: str | None  # "C", "F#", "Bb", ...
    scale: str | None  # "major" or "minor"
    key_strength: float | None
    loudness_lufs: float | None  # EBU R128 integrated; None for silence
    loudness_range_lu: float | None
    true_peak_dbtp: float | None
    waveforms: tuple[Waveform, ...]  # one per zoom level, finest first


def analyze(
    path: str | Path,
    *,
    zoom_levels: tuple[int, ...] = ZOOM_LEVELS,
    chunk_frames: int = CHUNK_FRAMES,
    strict: bool = True,
) -> AnalysisResult:
    """Decode ``path`` once and measure everything; raises ``MediaError``.

    ``strict=False`` measures what ffmpeg could decode of a damaged file instead of
    failing (see ``Decoding``).
    """
    formats = [PcmFormat(), PcmFormat(sample_rate=ANALYSIS_RATE, channels=1)]
    with Decoding(path, formats, chunk_frames=chunk_frames, strict=strict) as decoding:
        native = decoding.streams[0]
        loudness = LoudnessMeter(
            native.sample_rate, channel_weights(native.channels, native.channel_mask)
        )
        peak = TruePeakMeter(native.channels)
        waveform = WaveformBuilder(native.sample_rate, zoom_levels)
        tempo = TempoEstimator()
        key = KeyEstimator()
        for index, chunk in decoding:
            if index == 0:
                loudness.feed(chunk)
                peak.feed(chunk)
                waveform.feed(chunk)
            else:
                tempo.feed(chunk[:, 0])
                key.feed(chunk[:, 0])
        frames = decoding.frames[0]
    if frames == 0:
        raise MediaError(f"no audio in {Path(path).name}: the stream holds no samples")
    measured = loudness.result()
    silent = measured.integrated_lufs is None  # nothing above -70 LUFS
    found_tempo = None if silent else tempo.result()
    found_key = None if silent else key.result()
    return AnalysisResult(
        duration_ms=round(frames * 1000 / native.sample_rate),
        sample_rate=native.sample_rate,
        channels=native.channels,
        bpm=found_tempo.bpm if found_tempo else None,
        bpm_confidence=found_tempo.confidence if found_tempo else None,
        key=found_key.key if found_key else None,
        scale=found_key.scale if found_key else None,
        key_strength=found_key.strength if found_key else None,
        loudness_lufs=measured.integrated_lufs,
        loudness_range_lu=measured.range_lu,
        true_peak_dbtp=peak.dbtp(),
        waveforms=waveform.result(),
    )
