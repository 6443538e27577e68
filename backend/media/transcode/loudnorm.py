"""EBU R128 loudness normalisation with ffmpeg's ``loudnorm``, in two passes.

Pass one measures (``print_format=json``: integrated loudness, true peak, loudness
range, the gate threshold); pass two applies those ``measured_*`` values with
``linear=true``: one constant gain, so the take's dynamics stay as the band played
them. ffmpeg falls back to its dynamic mode when the constant gain would push the true
peak over the target (a quiet take with loud hits); the result says which it used.

The target is that of most streaming services' loudness normalisation:
-16 LUFS integrated, -1.5 dBTP true peak, 11 LU loudness range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# loudnorm's pass-one output is resampled to 192 kHz; back to what Opus encodes.
OUTPUT_RATE = 48000


@dataclass(frozen=True)
class LoudnessTarget:
    integrated_lufs: float = -16.0
    true_peak_dbtp: float = -1.5
    range_lu: float = 11.0

    def filter_options(self) -> str:
        return f"I={self.integrated_lufs}:TP={self.true_peak_dbtp}:LRA={self.range_lu}"


DEFAULT_TARGET = LoudnessTarget()


@dataclass(frozen=True)
class LoudnessMeasurement:
    """Pass one's report on the source."""

    integrated_lufs: float
    true_peak_dbtp: float
    range_lu: float
    threshold_lufs: float  # the relative gate, integrated - 10 LU
    target_offset_lu: float

    @classmethod
    def from_analysis(
        cls,
        *,
        integrated_lufs: float | None,
        range_lu: float | None,
        true_peak_dbtp: float | None,
    ) -> LoudnessMeasurement:
        """The same figures from ``backend.media.analysis.analyze`` (BS.1770 both), so a
        caller that analysed the take first can skip pass one (loudnorm measures at
        ~45x realtime, the slowest part of the normalised rendition). None: silence."""
        integrated = -math.inf if integrated_lufs is None else integrated_lufs
        return cls(
            integrated_lufs=integrated,
            true_peak_dbtp=-math.inf if true_peak_dbtp is None else true_peak_dbtp,
            range_lu=range_lu or 0.0,
            threshold_lufs=integrated - 10,  # BS.1770's relative gate
            target_offset_lu=0.0,  # only loudnorm's dynamic fallback uses it
        )

    @property
    def is_silent(self) -> bool:
        """Nothing above the absolute gate (-70 LUFS): there is nothing to normalise."""
        return not math.isfinite(self.integrated_lufs) or self.integrated_lufs <= -70


def measure_filter(target: LoudnessTarget) -> str:
    return f"loudnorm={target.filter_options()}:print_format=json"


def apply_filter(target: LoudnessTarget, measured: LoudnessMeasurement) -> str:
    # loudnorm refuses measured values outside these ranges (af_loudnorm.c options).
    values = {
        "measured_I": _clamp(measured.integrated_lufs, -99, 0),
        "measured_TP": _clamp(measured.true_peak_dbtp, -99, 99),
        "measured_LRA": _clamp(measured.range_lu, 0, 99),
        "measured_thresh": _clamp(measured.threshold_lufs, -99, 0),
        "offset": _clamp(measured.target_offset_lu, -99, 99),
    }
    options = ":".join(f"{name}={value:.2f}" for name, value in values.items())
    return (
        f"loudnorm={target.filter_options()}:{options}:linear=true:print_format=json,"
        f"aresample={OUTPUT_RATE}"
    )


def parse_measurement(report: dict[str, Any]) -> LoudnessMeasurement:
    """From loudnorm's JSON: numbers as strings, "-inf" for silence."""
    return LoudnessMeasurement(
        integrated_lufs=float(report["input_i"]),
        true_peak_dbtp=float(report["input_tp"]),
        range_lu=float(report["input_lra"]),
        threshold_lufs=float(report["input_thresh"]),
        target_offset_lu=float(report["target_offset"]),
    )


def _clamp(value: float, low: float, high: float) -> float:
    if not math.isfinite(value):
        return low if value < 0 else high
    return min(max(value, low), high)
