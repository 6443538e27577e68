"""Key and scale in bounded memory: Essentia's KeyExtractor, one frame at a time.

KeyExtractor (streaming mode inside) cuts frames, takes each frame's spectral peaks,
whitens them, computes a 12-bin HPCP, averages the HPCPs of the whole signal and asks
Key for the best-matching profile. The average is all that needs remembering, so this
runs the same chain with the same settings as frames arrive and keeps a running sum:
twelve numbers, whatever the length. The tests check it names the same key as
KeyExtractor with a strength within 0.01.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.media.analysis._essentia import es
from backend.media.analysis.framing import Framer

SAMPLE_RATE = 44100
FRAME_SIZE = 4096
HOP_SIZE = 4096
MIN_FREQUENCY = 25.0
MAX_FREQUENCY = 3500.0
PCP_THRESHOLD = 0.2  # averaged bins below this share of the maximum count as absent
PROFILE = "bgate"  # KeyExtractor's default profile


@dataclass(frozen=True)
class Key:
    key: str  # "C", "C#", "Eb", ... as Essentia names them
    scale: str  # "major" or "minor"
    strength: float


class KeyEstimator:
    """Feed 44.1 kHz mono samples in order, then ask for ``result()``."""

    def __init__(self) -> None:
        self._framer = Framer(FRAME_SIZE, HOP_SIZE)
        self._window = es.Windowing(type="hann", size=FRAME_SIZE)
        self._spectrum = es.Spectrum(size=FRAME_SIZE)
        self._peaks = es.SpectralPeaks(
            orderBy="magnitude",
            magnitudeThreshold=1e-4,
            minFrequency=MIN_FREQUENCY,
            maxFrequency=MAX_FREQUENCY,
            maxPeaks=60,
            sampleRate=SAMPLE_RATE,
        )
        self._whitening = es.SpectralWhitening(maxFrequency=MAX_FREQUENCY, sampleRate=SAMPLE_RATE)
        self._hpcp = es.HPCP(
            size=12,
            bandPreset=False,
            harmonics=4,
            minFrequency=MIN_FREQUENCY,
            maxFrequency=MAX_FREQUENCY,
            nonLinear=False,
            normalized="none",
            referenceFrequency=440,
            sampleRate=SAMPLE_RATE,
            weightType="cosine",
            windowSize=1.0,
            maxShifted=False,
        )
        self._sum = np.zeros(12, dtype=np.float64)
        self._frames = 0

    def feed(self, samples: np.ndarray) -> None:
        for frame in self._framer.push(samples):
            spectrum = self._spectrum(self._window(np.ascontiguousarray(frame)))
            frequencies, magnitudes = self._peaks(spectrum)
            if len(frequencies) == 0:
                self._frames += 1
                continue
            whitened = self._whitening(spectrum, frequencies, magnitudes)
            self._sum += self._hpcp(frequencies, whitened)
            self._frames += 1

    def result(self) -> Key | None:
        if self._frames == 0 or not self._sum.any():
            return None
        average = self._sum / self._frames
        average /= average.max()
        average[average < PCP_THRESHOLD] = 0
        key, scale, strength, _ = es.Key(
            profileType=PROFILE,
            pcpSize=12,
            usePolyphony=False,
            useThreeChords=False,
            numHarmonics=4,
            slope=0.6,
        )(average.astype(np.float32))
        return Key(key=key, scale=scale, strength=float(strength))
