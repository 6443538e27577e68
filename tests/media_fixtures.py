"""Generated test audio for the media analysis: nothing binary is committed.

Signals are numpy arrays of shape (frames, channels), float in -1..1; ``write_wav``
stores them as 16- or 24-bit PCM with the standard ``wave`` module, ``write_wav_blocks``
does the same from a stream of blocks (a 3-hour recording never exists as one array),
and ``encode`` turns a WAV into another format through ffmpeg (Opus, WebM, FLAC, ...).

- ``clicks``: a click track at a given BPM;
- ``chord_progression``: I-IV-V-I (major) or i-iv-V-i (minor) in a key, tones with
  harmonics, as a pianist would outline the key;
- ``ebu_3341_case``: the EBU Tech 3341 minimum-requirement signals 1-5 (stereo 1 kHz
  sines and the gating sequences) and the true-peak signals 15-23;
- ``tone``: a sine at a level in dBFS;
- ``rehearsal_blocks``: minutes or hours of a band-like signal, block by block.
"""

from __future__ import annotations

import base64
import math
import struct
import subprocess
import wave
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import mutagen
import numpy as np
from mutagen import id3
from mutagen.aiff import AIFF
from mutagen.flac import FLAC, Picture
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover
from mutagen.wave import WAVE

from backend.media.decode import find_ffmpeg
from tests.audio_fixtures import ENCODINGS

NOTES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# EBU Tech 3341 (v3, 2016), table 1: expected integrated loudness of cases 1-5.
EBU_3341_LOUDNESS = {1: -23.0, 2: -33.0, 3: -23.0, 4: -23.0, 5: -23.0}
# Cases 15-23: expected true peak (dBTP); tolerance +0.2 / -0.4 dB.
EBU_3341_TRUE_PEAK = {
    **dict.fromkeys((15, 16, 17, 18), -6.0),
    19: 3.0,
    **dict.fromkeys((20, 21, 22, 23), 0.0),
}


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int, *, bits: int = 16) -> Path:
    """Store ``samples`` (frames, channels) or (frames,) as PCM WAV."""
    samples = samples.reshape(len(samples), -1)
    return write_wav_blocks(path, [samples], sample_rate, samples.shape[1], bits=bits)


def write_wav_blocks(
    path: str | Path,
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    channels: int,
    *,
    bits: int = 16,
) -> Path:
    """Store a stream of (frames, channels) blocks as one PCM WAV, block by block."""
    path = Path(path)
    scale = 2 ** (bits - 1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(bits // 8)
        out.setframerate(sample_rate)
        for block in blocks:
            ints = np.clip(np.rint(block.reshape(-1) * scale), -scale, scale - 1).astype("<i4")
            if bits == 16:
                data = ints.astype("<i2").tobytes()
            else:  # 24-bit: the three low bytes of each little-endian int32
                data = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
            out.writeframes(data)
    return path


def encode(source: str | Path, target: str | Path, fmt: str) -> Path:
    """``source`` re-encoded as ``fmt`` (a key of tests.audio_fixtures.ENCODINGS)."""
    _, output_args = ENCODINGS[fmt]
    command = [find_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-i", str(source), *output_args, str(target)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return Path(target)


def stereo(mono: np.ndarray) -> np.ndarray:
    return np.stack([mono, mono], axis=1)


def tone(
    frequency: float,
    dbfs: float,
    seconds: float,
    sample_rate: int = 48000,
    *,
    phase: float = 0.0,
) -> np.ndarray:
    """A sine whose peak is at ``dbfs``, mono, shape (frames,)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return 10 ** (dbfs / 20) * np.sin(2 * np.pi * frequency * t + phase)


def clicks(bpm: float, seconds: float, sample_rate: int = 44100) -> np.ndarray:
    """A click on every beat: a 1.5 kHz burst decaying over a few milliseconds."""
    out = np.zeros(round(seconds * sample_rate))
    n = np.arange(round(0.03 * sample_rate))
    click = 0.8 * np.sin(2 * np.pi * 1500 * n / sample_rate) * np.exp(-n / (0.005 * sample_rate))
    for beat in np.arange(0, seconds, 60 / bpm):
        start = round(beat * sample_rate)
        end = min(len(out), start + len(click))
        out[start:end] += click[: end - start]
    return out


def chord_progression(
    tonic: str,
    scale: str,
    *,
    seconds_per_chord: float = 2.0,
    repeats: int = 2,
    sample_rate: int = 44100,
) -> np.ndarray:
    """I-IV-V-I (major) or i-iv-V-i (minor, harmonic V) with a bass note, mono."""
    root = 48 + NOTES.index(tonic)  # the tonic in the octave below middle C
    third = 4 if scale == "major" else 3
    sixth = 9 if scale == "major" else 8
    chords = [(0, third, 7), (5, sixth, 12), (7, 11, 14), (0, third, 7)]
    parts = []
    for _ in range(repeats):
        for chord in chords:
            notes = [root + step for step in chord] + [root - 12 + chord[0]]
            parts.append(_chord(notes, seconds_per_chord, sample_rate))
    return np.concatenate(parts)


def _chord(midi_notes: list[int], seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    for note in midi_notes:
        frequency = 440 * 2 ** ((note - 69) / 12)
        for harmonic in range(1, 6):
            out += np.sin(2 * np.pi * frequency * harmonic * t) / harmonic
    envelope = np.minimum(1, t / 0.02) * np.exp(-t / (1.5 * seconds))
    return 0.3 * out * envelope / len(midi_notes)


def ebu_3341_case(case: int, sample_rate: int = 48000) -> np.ndarray:
    """EBU Tech 3341 test signal ``case`` (1-5, 15-23), stereo, shape (frames, 2)."""
    if case in (1, 2, 3, 4, 5):
        steps = {
            1: [(-23, 20)],
            2: [(-33, 20)],
            3: [(-36, 10), (-23, 60), (-36, 10)],
            4: [(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)],
            5: [(-26, 20), (-20, 20.1), (-26, 20)],
        }[case]
        mono = np.concatenate([tone(1000, level, secs, sample_rate) for level, secs in steps])
        return stereo(mono)
    if case in (15, 16, 17, 18, 19):
        # (fraction of the sample rate, amplitude, phase of the first sample in degrees)
        divisor, amplitude, degrees = {
            15: (4, 0.5, 0.0),
            16: (4, 0.5, 45.0),
            17: (6, 0.5, 60.0),
            18: (8, 0.5, 67.5),
            19: (4, 1.41, 45.0),
        }[case]
        t = np.arange(sample_rate)  # one second
        wave_ = amplitude * np.sin(2 * np.pi * t / divisor + math.radians(degrees))
        return stereo(_faded(wave_, round(0.01 * sample_rate)))
    if case in (20, 21, 22, 23):
        return stereo(_inter_sample_peak(offset=(case - 20) / 4, sample_rate=sample_rate))
    raise ValueError(f"no EBU Tech 3341 case {case} here")


def _faded(samples: np.ndarray, length: int) -> np.ndarray:
    """Raised-cosine fade in and out: a sine that starts at full level is a step, and
    the step's ringing is a true peak of its own (Essentia's TruePeakDetector reads
    -5.3 dBTP for an abrupt case 18), which is not what cases 15-19 are about."""
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(length) / length)
    out = samples.copy()
    out[:length] *= ramp
    out[-length:] *= ramp[::-1]
    return out


def _inter_sample_peak(offset: float, sample_rate: int) -> np.ndarray:
    """A band-limited burst whose reconstructed peak is exactly 1.0 (0 dBTP), placed
    ``offset`` samples after a sample instant, so the samples miss it (up to 3 dB)."""
    weights_and_frequencies = [(0.1, 2000.0), (0.2, 8000.0), (0.3, 12000.0), (0.4, 16000.0)]
    t = (np.arange(sample_rate) - sample_rate / 2 - offset) / sample_rate  # peak mid-way
    burst = sum(w * np.cos(2 * np.pi * f * t) for w, f in weights_and_frequencies)
    envelope = np.exp(-0.5 * (t / 0.005) ** 2)  # at most 1, and 1 only at the peak
    return burst * envelope


def rehearsal_blocks(
    seconds: float,
    *,
    sample_rate: int = 48000,
    bpm: float = 120.0,
    block_seconds: float = 10.0,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """A band-like stereo signal (kick/snare/hats at ``bpm`` over held chords and a
    little noise), produced ``block_seconds`` at a time so any length fits in memory."""
    rng = np.random.default_rng(seed)
    kit = _drum_kit(sample_rate, rng)
    beat = 60 / bpm
    block = round(block_seconds * sample_rate)
    total = round(seconds * sample_rate)
    chord_freqs = [220.0, 277.18, 329.63]
    for start in range(0, total, block):
        frames = min(block, total - start)
        t = (start + np.arange(frames)) / sample_rate
        out = 0.05 * sum(np.sin(2 * np.pi * f * t) for f in chord_freqs)
        out += 0.01 * rng.standard_normal(frames)
        first_beat = math.floor(t[0] / beat * 2) - 2
        for half_beat in range(first_beat, math.ceil(t[-1] / beat * 2) + 1):
            at = round(half_beat * beat / 2 * sample_rate) - start
            sounds = [kit["hat"]]
            if half_beat % 2 == 0:
                sounds.append(kit["kick"] if half_beat % 4 == 0 else kit["snare"])
            for sound in sounds:
                lo, hi = max(at, 0), min(at + len(sound), frames)
                if lo < hi:
                    out[lo:hi] += sound[lo - at : hi - at]
        yield stereo(0.5 * out)


def _drum_kit(sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(round(0.2 * sample_rate)) / sample_rate
    sweep = 2 * np.pi * 60 * t * (1 + 2 * np.exp(-t / 0.02))  # a pitch drop: a kick
    return {
        "kick": np.sin(sweep) * np.exp(-t / 0.07),
        "snare": 0.5 * rng.standard_normal(len(t)) * np.exp(-t / 0.035),
        "hat": 0.2 * rng.standard_normal(len(t)) * np.exp(-t / 0.005),
    }


# --- files for the probe and transcode tests -----------------------------------------


def png_image(width: int = 2, height: int = 2) -> bytes:
    """A tiny valid PNG (grey pixels), built with zlib: cover art for tag round trips."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))  # filter 0, grey
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def write_tags(
    path: str | Path,
    *,
    title: str,
    artist: str,
    album: str,
    date: str,
    cover: bytes | None = None,
) -> Path:
    """Tag an MP3, AIFF, WAV ('id3 ' chunk), FLAC, Ogg Vorbis/Opus or M4A with mutagen:
    each format's own frames (ID3 TIT2/TPE1/TALB/TDRC/APIC, Vorbis comments and
    METADATA_BLOCK_PICTURE, MP4 ©nam/©ART/©alb/©day/covr)."""
    path = Path(path)
    audio = mutagen.File(path)
    if audio is None:
        raise ValueError(f"mutagen cannot tag {path.name}")
    if isinstance(audio, MP4):
        if audio.tags is None:
            audio.add_tags()
        audio.tags.update({"©nam": [title], "©ART": [artist], "©alb": [album], "©day": [date]})
        if cover is not None:
            audio.tags["covr"] = [MP4Cover(cover, imageformat=MP4Cover.FORMAT_PNG)]
    elif isinstance(audio, MP3 | AIFF | WAVE):
        if audio.tags is None:
            audio.add_tags()
        tags = audio.tags
        tags.add(id3.TIT2(encoding=3, text=title))
        tags.add(id3.TPE1(encoding=3, text=artist))
        tags.add(id3.TALB(encoding=3, text=album))
        tags.add(id3.TDRC(encoding=3, text=date))
        if cover is not None:
            tags.add(id3.APIC(encoding=3, mime="image/png", type=3, desc="cover", data=cover))
    else:  # Vorbis comments: FLAC, Ogg Vorbis, Ogg Opus
        if audio.tags is None:
            audio.add_tags()
        audio.tags.update({"title": title, "artist": artist, "album": album, "date": date})
        if cover is not None:
            picture = Picture()
            picture.type, picture.mime, picture.data = 3, "image/png", cover
            if isinstance(audio, FLAC):
                audio.add_picture(picture)
            else:
                encoded = base64.b64encode(picture.write()).decode("ascii")
                audio.tags["metadata_block_picture"] = [encoded]
    audio.save()
    return path


def add_bext(path: str | Path, *, origination: str) -> Path:
    """Append a Broadcast WAV 'bext' chunk whose OriginationDate/Time are
    ``origination`` ("2023-10-15T20:30:00"), as field recorders write them."""
    path = Path(path)
    body = bytearray(602)
    body[320:330] = origination[:10].encode("ascii")
    body[330:338] = origination[11:19].encode("ascii")
    data = path.read_bytes()
    riff = data[12:] + b"bext" + struct.pack("<I", len(body)) + bytes(body)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(riff)) + b"WAVE" + riff)
    return path


def media_recorder_webm(source: str | Path, target: str | Path) -> Path:
    """WebM/Opus as a browser's MediaRecorder writes it: streamed, so the header holds
    no duration (nor cues). ffmpeg writes the same when its output is a pipe."""
    command = [find_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error"]
    command += ["-i", str(source), "-c:a", "libopus", "-b:a", "96k", "-f", "webm", "pipe:1"]
    done = subprocess.run(command, check=True, capture_output=True, timeout=120)
    target = Path(target)
    target.write_bytes(done.stdout)
    return target


def video_only(path: str | Path, *, seconds: float = 1.0) -> Path:
    """An MP4 with a picture and no sound."""
    command = [find_ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"]
    command += ["-i", f"testsrc=duration={seconds}:size=64x64", "-c:v", "mpeg4", str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return Path(path)
