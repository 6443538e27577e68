"""Decode any file ffmpeg reads into float32 PCM chunks, never the whole file at once.

One ffmpeg process decodes the file once and can hand out several PCM streams, e.g.
the file's own rate and channels for loudness and peaks plus 44.1 kHz mono for tempo
and key. ffmpeg writes each stream as WAV (so its header states the rate, channels and
speaker layout) to a pipe of its own, and ``Decoding`` reads whichever pipe has data:
memory stays at a few chunks whatever the length of the file, and neither pipe can
stall ffmpeg while we wait on the other.

    with Decoding(path, [PcmFormat(), PcmFormat(sample_rate=44100, channels=1)]) as d:
        native, mono = d.streams
        for index, chunk in d:  # chunk: float32 array, shape (frames, channels)
            ...

Failures become a ``MediaError`` whose message a person understands ("not an audio
file", "truncated or corrupt FLAC stream"), built from what ffmpeg printed.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import struct
import subprocess
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType

import numpy as np

from backend.core.errors import BadUserInput

CHUNK_FRAMES = 65536
_READ_SIZE = 1 << 20
_PIPE_SIZE = 1 << 20  # ask Linux for 1 MiB pipes: fewer wake-ups per second of audio
_F_SETPIPE_SZ = 1031
_MAX_HEADER_BYTES = 1 << 16
_STDERR_LINES = 40
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class MediaError(BadUserInput):
    """A file that cannot be decoded or analysed; the message says why in plain words."""


@dataclass(frozen=True)
class PcmFormat:
    """What to ask ffmpeg for: ``None`` keeps the file's own rate or channel count."""

    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True)
class PcmStream:
    """What ffmpeg delivers on one pipe, read from the WAV header it wrote."""

    sample_rate: int
    channels: int
    # WAVE_FORMAT_EXTENSIBLE speaker bits (FL=0x1, FR=0x2, FC=0x4, LFE=0x8, ...);
    # 0 when ffmpeg wrote a plain header (mono and stereo).
    channel_mask: int = 0


@cache
def find_ffmpeg() -> str:
    """ffmpeg from PATH, else the binary shipped in the imageio-ffmpeg wheel."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise MediaError("ffmpeg is missing: put it on PATH or install imageio-ffmpeg") from exc


def decode(
    path: str | Path,
    *,
    sample_rate: int | None = None,
    channels: int | None = None,
    chunk_frames: int = CHUNK_FRAMES,
    strict: bool = True,
) -> Iterator[np.ndarray]:
    """float32 chunks of shape (frames, channels); one stream, converted as asked."""
    with Decoding(
        path,
        [PcmFormat(sample_rate=sample_rate, channels=channels)],
        chunk_frames=chunk_frames,
        strict=strict,
    ) as decoding:
        for _, chunk in decoding:
            yield chunk


class Decoding:
    """One ffmpeg run over ``path`` producing one PCM stream per requested format.

    ``strict``: ffmpeg reports damaged data (a truncated FLAC, a corrupt MP3 frame) but
    carries on; strict decoding turns that report into a ``MediaError`` once the stream
    has ended, so nothing is measured on half a file without anyone knowing.
    """

    def __init__(
        self,
        path: str | Path,
        formats: Sequence[PcmFormat] = (PcmFormat(),),
        *,
        chunk_frames: int = CHUNK_FRAMES,
        strict: bool = True,
    ) -> None:
        if not formats:
            raise ValueError("ask for at least one PCM format")
        self.path = Path(path)
        self.formats = tuple(formats)
        self.chunk_frames = chunk_frames
        self.strict = strict
        self.streams: tuple[PcmStream, ...] = ()
        self.frames: list[int] = [0] * len(self.formats)  # frames delivered per stream
        self._proc: subprocess.Popen[bytes] | None = None
        self._fds: list[int] = []
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._stderr_partial = b""
        self._buffers = [bytearray() for _ in self.formats]
        self._ended: set[int] = set()
        self._discard = False  # after a failure: read the pipes to their end, keep nothing
        self._pump: Iterator[int] | None = None

    def __enter__(self) -> Decoding:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Run ffmpeg and read every stream's header, so ``streams`` is known."""
        if not self.path.is_file():
            what = "a folder, not a file" if self.path.is_dir() else "file not found"
            raise MediaError(f"{what}: {self.path.name}")
        if self.path.stat().st_size == 0:
            raise MediaError(f"empty file (0 bytes): {self.path.name}")
        readers, writers = [], []
        for _ in self.formats:
            read_end, write_end = os.pipe()
            readers.append(read_end)
            writers.append(write_end)
            with contextlib.suppress(OSError):  # Linux only; a smaller pipe works too
                import fcntl

                fcntl.fcntl(read_end, _F_SETPIPE_SZ, _PIPE_SIZE)
        self._fds = readers
        try:
            self._proc = subprocess.Popen(
                self._command(writers),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=writers,
            )
        finally:
            for fd in writers:
                os.close(fd)
        self._pump = self._read_pipes()
        try:
            self.streams = tuple(self._read_header(i) for i in range(len(self.formats)))
        except BaseException:
            self.close()  # __exit__ does not run when __enter__ fails
            raise

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """(stream index, float32 array of shape (frames, channels)) until the file ends."""
        if self._pump is None:
            self.start()
        assert self._pump is not None
        for index in range(len(self.streams)):  # whatever came along with the headers
            yield from self._take(index)
        for index in self._pump:
            yield from self._take(index)
        self._finish()

    def close(self) -> None:
        if self._pump is not None:
            self._pump.close()  # closes its selector
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            self._proc.wait()
            if self._proc.stderr is not None:
                self._proc.stderr.close()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def _command(self, writers: Sequence[int]) -> list[str]:
        command = [find_ffmpeg(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"]
        # "file:" keeps a name such as "take:2.wav" from being read as a protocol.
        command += ["-i", f"file:{self.path.resolve()}"]
        for fmt, fd in zip(self.formats, writers, strict=True):
            command += ["-map", "0:a:0", "-map_metadata", "-1", "-fflags", "+bitexact"]
            if fmt.channels is not None:
                command += ["-ac", str(fmt.channels)]
            if fmt.sample_rate is not None:
                command += ["-ar", str(fmt.sample_rate)]
            command += ["-c:a", "pcm_f32le", "-f", "wav", f"pipe:{fd}"]
        return command

    def _read_pipes(self) -> Iterator[int]:
        """Read whichever pipe is ready into its buffer; yield that stream's index."""
        assert self._proc is not None and self._proc.stderr is not None
        stderr_fd = self._proc.stderr.fileno()
        with selectors.DefaultSelector() as selector:
            for index, fd in enumerate(self._fds):
                selector.register(fd, selectors.EVENT_READ, index)
            selector.register(stderr_fd, selectors.EVENT_READ, -1)
            while selector.get_map():
                for key, _ in selector.select():
                    data = os.read(key.fd, _READ_SIZE)
                    if not data:
                        selector.unregister(key.fd)
                    if key.data == -1:
                        self._keep_stderr(data)
                        continue
                    if data:
                        if not self._discard:
                            self._buffers[key.data] += data
                    else:
                        self._ended.add(key.data)
                    yield key.data

    def _read_header(self, index: int) -> PcmStream:
        """Parse the WAV header ffmpeg writes first on pipe ``index``."""
        assert self._pump is not None
        buffer = self._buffers[index]
        while True:
            parsed = _parse_wav_header(buffer)
            if parsed is not None:
                stream, offset = parsed
                del buffer[:offset]
                return stream
            if len(buffer) > _MAX_HEADER_BYTES:
                raise MediaError("ffmpeg wrote an unreadable PCM header")
            if index in self._ended:  # the stream ended before its header: ffmpeg failed
                self._finish()
                raise MediaError(self._explain())
            for got in self._pump:
                if got == index:
                    break
            else:
                self._finish()
                raise MediaError(self._explain())

    def _take(self, index: int) -> Iterator[tuple[int, np.ndarray]]:
        """Whole chunks from stream ``index``'s buffer; once it has ended, the rest too."""
        buffer = self._buffers[index]
        channels = self.streams[index].channels
        frame_bytes = channels * 4
        size = self.chunk_frames * frame_bytes
        while len(buffer) >= size or (index in self._ended and len(buffer) >= frame_bytes):
            take = min(size, len(buffer) - len(buffer) % frame_bytes)
            view = np.frombuffer(buffer, dtype="<f4", count=take // 4)
            chunk = view.reshape(-1, channels).copy()
            del view  # release the export, or the bytearray cannot shrink
            del buffer[:take]
            self.frames[index] += len(chunk)
            yield index, chunk

    def _keep_stderr(self, data: bytes) -> None:
        text = self._stderr_partial + data
        *lines, self._stderr_partial = text.split(b"\n")
        if not data:  # end of stderr
            lines.append(self._stderr_partial)
            self._stderr_partial = b""
        for line in lines:
            decoded = line.decode("utf-8", "replace").strip()
            if decoded:
                self._stderr.append(decoded)

    def _finish(self) -> None:
        assert self._proc is not None
        self._discard = True
        for _ in self._pump or ():  # read stderr to its end (all is read by now, normally)
            pass
        code = self._proc.wait()
        if code != 0 or (self.strict and self._stderr):
            raise MediaError(self._explain(), ffmpeg=" | ".join(self._stderr)[-500:])

    def _explain(self) -> str:
        seconds = None
        if self.streams and self.frames[0]:
            seconds = self.frames[0] / self.streams[0].sample_rate
        return explain_ffmpeg_error(list(self._stderr), name=self.path.name, seconds=seconds)


def explain_ffmpeg_error(lines: Sequence[str], *, name: str, seconds: float | None = None) -> str:
    """A message a person understands, from the last lines ffmpeg printed."""
    text = "\n".join(lines)
    if "No such file or directory" in text:
        return f"file not found: {name}"
    if "Permission denied" in text:
        return f"permission denied reading {name}"
    if "Is a directory" in text:
        return f"a folder, not a file: {name}"
    if "matches no streams" in text or "does not contain any stream" in text:
        return f"no audio stream in {name}"
    if "Error opening input" in text:
        return f"not an audio file: {name} (ffmpeg cannot read it)"
    if not lines:
        return f"ffmpeg could not decode {name}"
    where = f" (decoding failed after {seconds:.1f} s of audio)" if seconds is not None else ""
    return f"truncated or corrupt {_codec_label(text)} stream in {name}{where}"


_CODEC_LABELS = {
    "flac": "FLAC",
    "mp3": "MP3",
    "mp3float": "MP3",
    "aac": "AAC",
    "opus": "Opus",
    "libopus": "Opus",
    "vorbis": "Vorbis",
    "alac": "ALAC",
    "wavpack": "WavPack",
}


def _codec_label(text: str) -> str:
    match = re.search(r"\[(?:dec:)?([a-z0-9_]+) @", text)
    if match is None:
        return "audio"
    name = match.group(1)
    if name.startswith("pcm_"):
        return "PCM"
    return _CODEC_LABELS.get(name, name)


def _parse_wav_header(buffer: bytearray) -> tuple[PcmStream, int] | None:
    """(stream, offset of the first PCM byte), or None while the header is incomplete."""
    if len(buffer) < 12:
        return None
    if buffer[:4] != b"RIFF" or buffer[8:12] != b"WAVE":
        raise MediaError("ffmpeg wrote something that is not WAV on its PCM pipe")
    offset = 12
    stream: PcmStream | None = None
    while len(buffer) >= offset + 8:
        chunk_id = bytes(buffer[offset : offset + 4])
        (size,) = struct.unpack_from("<I", buffer, offset + 4)
        body = offset + 8
        if chunk_id == b"data":
            if stream is None:
                raise MediaError("ffmpeg wrote PCM data before its format")
            return stream, body
        if len(buffer) < body + size:
            return None
        if chunk_id == b"fmt ":
            stream = _parse_fmt(bytes(buffer[body : body + size]))
        offset = body + size + (size & 1)
    return None


def _parse_fmt(fmt: bytes) -> PcmStream:
    tag, channels, rate = struct.unpack_from("<HHI", fmt, 0)
    (bits,) = struct.unpack_from("<H", fmt, 14)
    mask = 0
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 40:
        (mask,) = struct.unpack_from("<I", fmt, 20)
        (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the sub-format GUID
    if tag != _WAVE_FORMAT_IEEE_FLOAT or bits != 32 or channels < 1 or rate < 1:
        raise MediaError("ffmpeg wrote an unexpected PCM format")
    return PcmStream(sample_rate=rate, channels=channels, channel_mask=mask)
