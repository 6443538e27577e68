"""Overlapping frames cut from a stream of samples that arrives in chunks."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class Framer:
    """Frames of ``size`` samples starting at sample 0 and every ``hop`` samples after.

    A frame comes out once all its samples have arrived, whatever the chunk boundaries,
    so framing a file chunk by chunk gives the frames of the whole file; the samples of
    a last, incomplete frame are dropped.
    """

    def __init__(self, size: int, hop: int) -> None:
        self.size = size
        self.hop = hop
        self._tail = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """The frames completed by ``samples`` (1-D), as an array of shape (n, size)."""
        buffer = np.concatenate([self._tail, samples.astype(np.float32, copy=False)])
        count = 0 if len(buffer) < self.size else (len(buffer) - self.size) // self.hop + 1
        self._tail = buffer[count * self.hop :].copy()
        if count == 0:  # a chunk smaller than a frame (an HLS demuxer's first packets)
            return np.zeros((0, self.size), dtype=np.float32)
        return sliding_window_view(buffer, self.size)[:: self.hop][:count]
