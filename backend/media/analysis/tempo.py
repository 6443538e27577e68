"""Tempo and its confidence in bounded memory, whatever the length of the recording.

Essentia's RhythmExtractor2013 (multifeature) takes the whole signal as one array, and
two of its five onset functions need the whole signal too: 3 hours at 44.1 kHz would be
1.9 GB, and beat tracking over 3 hours of onsets alone peaks near 500 MB. So the same
building blocks are assembled to stream:

1. onset functions ('complex', 'rms', 'melflux', see onsets.py) are computed as the
   audio goes past: three floats per 11.6 ms, about 4 MB for 3 hours;
2. beat tracking runs per segment of 5 to 10 minutes of onset values: Essentia's
   TempoTapDegara on each function, then TempoTapMaxAgreement picks the ticks most
   trackers agree on and rates that agreement (the confidence RhythmExtractor2013
   reports, 0 to 5.32; above 3.5 is excellent). A take up to 10 minutes long is one
   segment, so it is tracked exactly as a whole;
3. octave check: TempoTapDegara's tempo prior leans towards 120 BPM, so a fast even
   pulse (a 174 BPM click) can come out at half speed. When the onsets halfway between
   ticks are as strong as those on the ticks, the ticks are doubled;
4. the tempo of the file is RhythmExtractor2013's rule over the beat intervals of all
   segments: the most common interval, averaged with its neighbours. It is taken over
   intervals (in onset frames) rather than BPM values, so the one-frame jitter of tick
   positions averages out instead of biasing the result. For a rehearsal holding many
   songs this is the dominant tempo; the confidence is the segments' confidences
   weighted by their length.

Segments without rhythm are skipped rather than guessed at: silence, and sound whose
level hardly ever rises (a held tone, a hum), where any tracker only follows noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from backend.media.analysis import onsets
from backend.media.analysis._essentia import es
from backend.media.analysis.framing import Framer

SAMPLE_RATE = onsets.SAMPLE_RATE
MIN_TEMPO = 40
MAX_TEMPO = 208
SEGMENT_FRAMES = round(300 * onsets.RATE)  # analysed once twice this much is waiting
MIN_FRAMES = round(6 * onsets.RATE)  # TempoTapDegara looks at 6-second windows
SILENCE_POWER = 1e-7  # mean square below -70 dBFS: nothing to track
MIN_ACTIVITY = 1e-3  # mean level rise / mean level: steady tones ~1e-8, music > 1e-2
DOUBLING_RATIO = 0.8  # off-beat onsets this strong relative to on-beat ones: double


@dataclass(frozen=True)
class Tempo:
    bpm: float
    confidence: float


class TempoEstimator:
    """Feed 44.1 kHz mono samples in order, then ask for ``result()``."""

    def __init__(self) -> None:
        self._framer = Framer(onsets.FRAME_SIZE, onsets.HOP_SIZE)
        self._onsets = onsets.OnsetFunctions()
        self._values: list[np.ndarray] = []  # onset values waiting, (n, 3) each
        self._power: list[np.ndarray] = []  # mean square of each frame's hop
        self._level: list[np.ndarray] = []  # spectral RMS of each frame
        self._waiting = 0
        self._intervals: list[np.ndarray] = []  # beat intervals of analysed segments [s]
        self._confidences: list[tuple[float, int]] = []  # (confidence, frames)

    def feed(self, samples: np.ndarray) -> None:
        frames = self._framer.push(samples)
        if len(frames) == 0:
            return
        values, level = self._onsets.compute(frames)
        self._values.append(values)
        self._level.append(level)
        hops = frames[:, : onsets.HOP_SIZE]
        self._power.append(np.einsum("ij,ij->i", hops, hops) / onsets.HOP_SIZE)
        self._waiting += len(frames)
        if self._waiting >= 2 * SEGMENT_FRAMES:
            self._analyse(*self._take(SEGMENT_FRAMES))

    def result(self) -> Tempo | None:
        if self._waiting:
            self._analyse(*self._take(self._waiting))
        if not self._intervals:
            return None
        bpm = dominant_tempo(np.concatenate(self._intervals))
        if bpm is None:
            return None
        weights = sum(frames for _, frames in self._confidences)
        confidence = sum(value * frames for value, frames in self._confidences) / weights
        return Tempo(bpm=bpm, confidence=float(confidence))

    def _take(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        taken = []
        for pending in (self._values, self._power, self._level):
            joined = np.concatenate(pending)
            pending[:] = [joined[count:]] if count < len(joined) else []
            taken.append(joined[:count])
        self._waiting -= count
        return taken[0], taken[1], taken[2]

    def _analyse(self, values: np.ndarray, power: np.ndarray, level: np.ndarray) -> None:
        if len(values) < MIN_FRAMES or float(power.mean()) < SILENCE_POWER:
            return
        if float(values[:, 1].mean()) < MIN_ACTIVITY * float(level.mean()):
            return
        candidates = [
            es.TempoTapDegara(sampleRateODF=onsets.RATE, minTempo=MIN_TEMPO, maxTempo=MAX_TEMPO)(
                np.ascontiguousarray(values[:, column])
            )
            for column in range(values.shape[1])
        ]
        ticks, confidence = es.TempoTapMaxAgreement()(candidates)
        ticks = np.asarray(ticks, dtype=np.float64)
        if len(ticks) < 3:
            return
        ticks = _check_octave(ticks, values)
        self._intervals.append(np.diff(ticks))
        self._confidences.append((float(confidence), len(values)))


def dominant_tempo(intervals: np.ndarray) -> float | None:
    """BPM of the most common beat interval, averaged over intervals within 1.5 frames."""
    periods = np.asarray(intervals, dtype=np.float64) * onsets.RATE  # in onset frames
    shortest = 60 * onsets.RATE / MAX_TEMPO * 0.9
    longest = 60 * onsets.RATE / MIN_TEMPO * 1.1
    periods = periods[(periods >= shortest) & (periods <= longest)]
    if len(periods) == 0:
        return None
    counts = np.bincount(np.rint(periods).astype(int)).astype(np.float64)
    smoothed = counts.copy()
    smoothed[1:] += 0.5 * counts[:-1]
    smoothed[:-1] += 0.5 * counts[1:]
    mode = int(np.argmax(smoothed))
    near = periods[np.abs(periods - mode) <= 1.5]
    if len(near) == 0:
        return None
    return float(60 * onsets.RATE / near.mean())


def _check_octave(ticks: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Ticks doubled when off-beat onsets are as strong as on-beat ones (see above)."""
    bpm = dominant_tempo(np.diff(ticks))
    if bpm is None or 2 * bpm > MAX_TEMPO:
        return ticks
    peaks = values.max(axis=0)
    strength = (values / np.where(peaks > 0, peaks, 1)).sum(axis=1)
    midpoints = (ticks[1:] + ticks[:-1]) / 2
    on_beat = _strength_near(strength, ticks)
    off_beat = _strength_near(strength, midpoints)
    if on_beat <= 0 or off_beat < DOUBLING_RATIO * on_beat:
        return ticks
    return np.sort(np.concatenate([ticks, midpoints]))


def _strength_near(strength: np.ndarray, times: np.ndarray, reach: int = 2) -> float:
    """Mean over ``times`` of the strongest onset within ``reach`` frames of each."""
    padded = np.pad(strength, reach)
    nearby = sliding_window_view(padded, 2 * reach + 1).max(axis=1)
    index = np.rint(times * onsets.RATE).astype(int)
    index = index[(index >= 0) & (index < len(strength))]
    return float(nearby[index].mean()) if len(index) else 0.0
