"""Waveform peaks in the audiowaveform JSON format (version 2), several zoom levels.

One document per zoom level, exactly as BBC's ``audiowaveform -b 8 -z N`` writes it:

    {"version": 2, "channels": 1, "sample_rate": 48000, "samples_per_pixel": 256,
     "bits": 8, "length": 3, "data": [-12, 14, -60, 63, -3, 2]}

``data`` holds a (min, max) pair per pixel: the lowest and highest sample of that
pixel's ``samples_per_pixel`` samples, 8-bit (-128..127, i.e. floor(x * 128)). Channels
are mixed down to their mean first, as audiowaveform does without --split-channels. A
last, partial pixel covers the samples left over.

Why one file per level: peaks.js and waveform-data.js read exactly this format, one
level per document, and a client wants the coarse overview without downloading the
fine level (3 hours at 256 samples per pixel is about 16 MB of JSON; at 4096, 1 MB).
The levels are computed in one pass: the finest from the samples, each coarser one by
merging pixels of the finest, so every level must be a multiple of the finest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TextIO

import numpy as np

ZOOM_LEVELS = (256, 1024, 4096)
_WRITE_PAIRS = 65536  # pixels written per slice when streaming JSON out


@dataclass(frozen=True, eq=False)
class Waveform:
    sample_rate: int
    samples_per_pixel: int
    data: np.ndarray  # int8, shape (length, 2): min and max of each pixel

    @property
    def length(self) -> int:
        return len(self.data)

    @property
    def header(self) -> dict[str, int]:
        """The audiowaveform header: everything but ``data`` (for Analysis.waveform_meta)."""
        return {
            "version": 2,
            "channels": 1,
            "sample_rate": self.sample_rate,
            "samples_per_pixel": self.samples_per_pixel,
            "bits": 8,
            "length": self.length,
        }

    @property
    def file_name(self) -> str:
        return f"waveform-{self.samples_per_pixel}.json"

    def write_json(self, out: TextIO) -> None:
        """The JSON document, written in slices so no 4-million-item list is built."""
        head = json.dumps(self.header, separators=(",", ":"))
        out.write(head[:-1] + ',"data":[')
        flat = self.data.reshape(-1)
        step = 2 * _WRITE_PAIRS
        for start in range(0, len(flat), step):
            if start:
                out.write(",")
            out.write(",".join(map(str, flat[start : start + step].tolist())))
        out.write("]}")

    def to_json(self) -> str:
        return json.dumps(
            {**self.header, "data": self.data.reshape(-1).tolist()}, separators=(",", ":")
        )


class WaveformBuilder:
    """Feed float32 chunks of shape (frames, channels) in order; then ``result()``."""

    def __init__(self, sample_rate: int, zoom_levels: tuple[int, ...] = ZOOM_LEVELS) -> None:
        finest = min(zoom_levels)
        if any(level % finest for level in zoom_levels):
            raise ValueError("every zoom level must be a multiple of the finest one")
        self.sample_rate = sample_rate
        self.zoom_levels = tuple(sorted(set(zoom_levels)))
        self._finest = finest
        self._pixels: list[np.ndarray] = []  # int8 (n, 2) per chunk, at the finest level
        self._rest = np.zeros(0, dtype=np.float32)  # samples of an unfinished pixel

    def feed(self, chunk: np.ndarray) -> None:
        mono = chunk[:, 0].astype(np.float32)  # a copy: the mean is summed into it
        for channel in range(1, chunk.shape[1]):
            mono += chunk[:, channel]
        if chunk.shape[1] > 1:
            mono *= np.float32(1 / chunk.shape[1])
        samples = np.concatenate([self._rest, mono]) if len(self._rest) else mono
        whole = len(samples) // self._finest * self._finest
        self._rest = samples[whole:].copy()
        if whole:
            pixels = samples[:whole].reshape(-1, self._finest)
            self._pixels.append(_quantise(pixels.min(axis=1), pixels.max(axis=1)))

    def result(self) -> tuple[Waveform, ...]:
        pixels = list(self._pixels)
        if len(self._rest):
            pixels.append(_quantise(self._rest.min(keepdims=True), self._rest.max(keepdims=True)))
        finest = np.concatenate(pixels) if pixels else np.zeros((0, 2), dtype=np.int8)
        return tuple(
            Waveform(self.sample_rate, level, _merge(finest, level // self._finest))
            for level in self.zoom_levels
        )


def _quantise(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    pairs = np.stack([low, high], axis=1) * 128
    return np.clip(np.floor(pairs), -128, 127).astype(np.int8)


def _merge(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Pixels of a level ``factor`` times coarser; a partial group makes the last pixel."""
    if factor == 1 or len(pixels) == 0:
        return pixels
    whole = len(pixels) // factor * factor
    groups = pixels[:whole].reshape(-1, factor, 2)
    merged = [np.stack([groups[:, :, 0].min(axis=1), groups[:, :, 1].max(axis=1)], axis=1)]
    if whole < len(pixels):
        tail = pixels[whole:]
        merged.append(np.array([[tail[:, 0].min(), tail[:, 1].max()]], dtype=np.int8))
    return np.concatenate(merged)
