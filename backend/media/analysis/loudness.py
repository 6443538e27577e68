"""EBU R128 integrated loudness and loudness range, measured chunk by chunk.

ITU-R BS.1770-4 with the EBU Tech 3341/3342 gates, as Essentia's LoudnessEBUR128 does,
but streaming: that algorithm takes the whole stereo signal as one array (3 hours at
48 kHz would be 4 GB of float32 pairs) and handles two channels only. Here:

- each channel is K-weighted by Essentia's IIR filter (it keeps its state from one
  call to the next), with coefficients derived for the file's own sample rate;
- the weighted channel powers are summed into 100 ms sub-blocks: ten numbers a
  second are all that is kept (about 860 kB for 3 hours);
- at the end, 400 ms blocks (75 % overlap) give the integrated loudness, gated at
  -70 LUFS and 10 LU below the ungated level, and 3 s windows every 100 ms give the
  loudness range (EBU Tech 3342: -70 LUFS and -20 LU gates, 95th minus 10th percentile).

Channel weights follow BS.1770: 1.0 for left, right and centre, 1.41 for surround
channels, 0 for LFE. A mono file is measured as dual mono, i.e. as if its one channel
were played on both left and right (weight 2.0), which reads 3 dB higher than a single
channel would; that is what Essentia's stereo-only meter gives for a mono file fed to
both inputs, and what most loudness meters do.

Silence (no 400 ms block above -70 LUFS) has no loudness: ``None``, not a number.
Likewise the loudness range needs at least 3 seconds of non-silent audio.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np

from backend.media.analysis._essentia import es

ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0
RANGE_RELATIVE_GATE = -20.0
_OFFSET = -0.691  # BS.1770: loudness = -0.691 + 10 log10(weighted mean square)

# WAVE_FORMAT_EXTENSIBLE speaker bits
_LFE = 0x8
_SURROUND = 0x10 | 0x20 | 0x200 | 0x400  # back left/right, side left/right
# ffmpeg's default layouts, for files whose header names no speakers
_DEFAULT_MASKS = {3: 0x7, 4: 0x107, 5: 0x37, 6: 0x3F, 7: 0x70F, 8: 0x63F}


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float | None
    range_lu: float | None


def channel_weights(channels: int, channel_mask: int = 0) -> np.ndarray:
    """BS.1770 weight of each channel; mono counts twice (dual mono)."""
    if channels == 1:
        return np.array([2.0])
    mask = channel_mask or _DEFAULT_MASKS.get(channels, 0)
    weights = []
    bit = 1
    for _ in range(channels):
        while mask and not mask & bit:  # next speaker named in the mask
            bit <<= 1
        if not mask:
            weights.append(1.0)
            continue
        weights.append(0.0 if bit == _LFE else 1.41 if bit & _SURROUND else 1.0)
        mask &= ~bit
    return np.array(weights)


def k_weighting(sample_rate: int) -> list[tuple[list[float], list[float]]]:
    """The two BS.1770 biquads (shelf, then high-pass) as (b, a), for any sample rate.

    Derived from the analogue prototype as libebur128 does; at 48 kHz they equal the
    coefficients printed in BS.1770.
    """
    gain_db, shelf_q, shelf_f0 = 3.999843853973347, 0.7071752369554196, 1681.974450955533
    k = math.tan(math.pi * shelf_f0 / sample_rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / shelf_q + k * k
    tilt = vb * k / shelf_q
    shelf = (
        [(vh + tilt + k * k) / a0, 2 * (k * k - vh) / a0, (vh - tilt + k * k) / a0],
        [1.0, 2 * (k * k - 1) / a0, (1 - k / shelf_q + k * k) / a0],
    )
    pass_q, pass_f0 = 0.5003270373238773, 38.13547087602444
    k = math.tan(math.pi * pass_f0 / sample_rate)
    a0 = 1 + k / pass_q + k * k
    high_pass = ([1.0, -2.0, 1.0], [1.0, 2 * (k * k - 1) / a0, (1 - k / pass_q + k * k) / a0])
    return [shelf, high_pass]


class LoudnessMeter:
    """Feed float32 chunks of shape (frames, channels) in order; then ``result()``."""

    def __init__(self, sample_rate: int, weights: np.ndarray) -> None:
        self._weights = np.asarray(weights, dtype=np.float64)
        self._filters = [
            [es.IIR(numerator=b, denominator=a) for b, a in k_weighting(sample_rate)]
            for _ in range(len(self._weights))
        ]
        self._block = max(1, round(sample_rate / 10))  # samples in 100 ms
        self._blocks = array("d")  # weighted channel power summed per 100 ms
        self._partial = 0.0
        self._partial_length = 0

    def feed(self, chunk: np.ndarray) -> None:
        power = np.zeros(len(chunk), dtype=np.float32)  # weighted, summed over channels
        for channel, (weight, filters) in enumerate(zip(self._weights, self._filters, strict=True)):
            if weight == 0:
                continue
            filtered = np.ascontiguousarray(chunk[:, channel], dtype=np.float32)
            for iir in filters:
                filtered = iir(filtered)
            filtered *= filtered
            if weight != 1:
                filtered *= weight
            power += filtered
        self._add(power)

    def _add(self, power: np.ndarray) -> None:
        start = 0
        if self._partial_length:
            start = min(len(power), self._block - self._partial_length)
            self._partial += float(power[:start].sum(dtype=np.float64))
            self._partial_length += start
            if self._partial_length < self._block:
                return
            self._blocks.append(self._partial)
            self._partial, self._partial_length = 0.0, 0
        whole = (len(power) - start) // self._block
        end = start + whole * self._block
        if whole:
            sums = power[start:end].reshape(whole, self._block).sum(axis=1, dtype=np.float64)
            self._blocks.extend(sums)
        self._partial = float(power[end:].sum(dtype=np.float64))
        self._partial_length = len(power) - end

    def result(self) -> Loudness:
        mean_square = np.frombuffer(self._blocks, dtype=np.float64) / self._block
        return Loudness(
            integrated_lufs=_gated_loudness(_windows(mean_square, 4), RELATIVE_GATE),
            range_lu=_loudness_range(_windows(mean_square, 30)),
        )


def _windows(mean_square: np.ndarray, length: int) -> np.ndarray:
    """Mean square of every run of ``length`` sub-blocks (a 100 ms hop)."""
    if len(mean_square) < length:
        return np.zeros(0)
    total = np.concatenate([[0.0], np.cumsum(mean_square)])
    return (total[length:] - total[:-length]) / length


def _lufs(mean_square: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return _OFFSET + 10 * np.log10(mean_square)


def _gated(mean_square: np.ndarray, relative_gate: float) -> np.ndarray:
    """The blocks above the absolute gate and ``relative_gate`` LU below their level."""
    loud = mean_square[_lufs(mean_square) > ABSOLUTE_GATE]
    if len(loud) == 0:
        return loud
    threshold = float(_lufs(np.array([loud.mean()]))[0]) + relative_gate
    return loud[_lufs(loud) > threshold]


def _gated_loudness(blocks: np.ndarray, relative_gate: float) -> float | None:
    kept = _gated(blocks, relative_gate)
    if len(kept) == 0:
        return None
    return float(_lufs(np.array([kept.mean()]))[0])


def _loudness_range(short_term: np.ndarray) -> float | None:
    kept = _gated(short_term, RANGE_RELATIVE_GATE)
    if len(kept) == 0:
        return None
    levels = _lufs(kept)
    return float(np.percentile(levels, 95) - np.percentile(levels, 10))
