"""Onset detection functions for beat tracking, a chunk of frames at a time.

These are the three frame-local functions of Essentia's BeatTrackerMultiFeature, as
Essentia's OnsetDetection defines them ('complex', 'rms', 'melflux'), computed with
numpy over many frames at once: calling OnsetDetection once per frame costs more in
Python call overhead than the arithmetic itself. The tests check the values against
OnsetDetection frame by frame. The mel filter bank is Essentia's own MelBands, read out
once as a matrix.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from backend.media.analysis._essentia import es

SAMPLE_RATE = 44100
FRAME_SIZE = 2048
HOP_SIZE = 512
RATE = SAMPLE_RATE / HOP_SIZE  # onset-function values per second
METHODS = ("complex", "rms", "melflux")
_BINS = FRAME_SIZE // 2 + 1
_SILENCE = 1e-10  # Essentia's silence cut-off for dB values


@cache
def window() -> np.ndarray:
    """Hann, normalised as Essentia's Windowing does (area 1, times 2)."""
    hann = np.hanning(FRAME_SIZE)
    return (hann * 2 / hann.sum()).astype(np.float32)


@cache
def mel_matrix() -> np.ndarray:
    """OnsetDetection's MelBands (40 bands, 0-4 kHz) as a (40, bins) matrix on power."""
    bands = es.MelBands(
        inputSize=_BINS,
        sampleRate=SAMPLE_RATE,
        numberBands=40,
        lowFrequencyBound=0,
        highFrequencyBound=4000,
    )
    unit = np.zeros(_BINS, dtype=np.float32)
    columns = []
    for k in range(_BINS):
        unit[k] = 1.0
        columns.append(bands(unit))
        unit[k] = 0.0
    return np.stack(columns, axis=1).astype(np.float32)


class OnsetFunctions:
    """Feed frames in order; each call returns their onset values, shape (n, 3), and
    each frame's spectral RMS (the level whose rises 'rms' measures), shape (n,)."""

    def __init__(self) -> None:
        self._magnitude = np.zeros((1, _BINS), dtype=np.float32)  # previous frame
        self._phase = np.zeros((2, _BINS), dtype=np.float32)  # the two previous frames
        self._rms: np.ndarray | None = None
        self._mel_db: np.ndarray | None = None

    def compute(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(frames) == 0:
            return np.zeros((0, len(METHODS)), dtype=np.float32), np.zeros(0, dtype=np.float32)
        spectrum = np.fft.rfft(frames * window(), axis=1)
        magnitude = np.abs(spectrum).astype(np.float32)
        phase = np.angle(spectrum).astype(np.float32)
        out = np.empty((len(frames), len(METHODS)), dtype=np.float32)
        out[:, 0] = self._complex(magnitude, phase)
        power = magnitude * magnitude
        level = np.sqrt(power.sum(axis=1)) / power.shape[1]
        out[:, 1] = self._energy_flux(level)
        out[:, 2] = self._mel_flux(power)
        return out, level

    def _complex(self, magnitude: np.ndarray, phase: np.ndarray) -> np.ndarray:
        """Bello's complex-domain difference against the phase-extrapolated last frame."""
        before = np.concatenate([self._magnitude, magnitude])[:-1]
        phases = np.concatenate([self._phase, phase])
        deviation = phase - 2 * phases[1:-1] + phases[:-2]
        self._magnitude = magnitude[-1:].copy()
        self._phase = phases[-2:].copy()
        distance = before * before + magnitude * magnitude
        distance -= 2 * before * magnitude * np.cos(deviation)
        return np.sqrt(np.maximum(distance, 0)).sum(axis=1)

    def _energy_flux(self, rms: np.ndarray) -> np.ndarray:
        """Half-rectified rise of the spectrum's RMS; 0 on the very first frame."""
        previous = rms[:1] if self._rms is None else self._rms
        self._rms = rms[-1:].copy()
        return np.maximum(np.diff(rms, prepend=previous), 0)

    def _mel_flux(self, power: np.ndarray) -> np.ndarray:
        """Half-rectified rise of the mel bands in dB, summed; 0 on the very first frame."""
        bands = power @ mel_matrix().T
        decibels = np.where(
            bands < _SILENCE, -200.0, 20 * np.log10(np.maximum(bands, _SILENCE))
        ).astype(np.float32)
        previous = decibels[:1] if self._mel_db is None else self._mel_db
        self._mel_db = decibels[-1:].copy()
        return np.maximum(np.diff(decibels, axis=0, prepend=previous), 0).sum(axis=1)
