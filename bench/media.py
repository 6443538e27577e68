"""How fast and how lean is the media pipeline? Prints figures; asserts nothing.

    .tools/bin/uv run --group bench python bench/media.py       # with the librosa comparison
    .venv/bin/python bench/media.py                             # without it (no librosa)

On a generated 10-minute take (48 kHz stereo WAV, the band-like signal of
tests/media_fixtures.py, cached in /tmp/backline-bench-media):

- realtime factors, i.e. seconds of audio per CPU second, the CPU of ffmpeg's child
  processes included (getrusage(RUSAGE_CHILDREN) deltas): probe (WAV, FLAC, MP3,
  MediaRecorder-style WebM), each analyser alone (fed from chunks decoded beforehand,
  so its own cost; the decodes are listed apart), ``analyze`` (one decode feeds all),
  and ``transcode`` (HLS + MP3, HLS alone, the normalised rendition);
- our analysis against a librosa pipeline doing the same job (librosa.load at 22.05 kHz,
  beat_track, chroma_stft with Krumhansl-Schmuckler key profiles, pyloudnorm's BS.1770
  integrated loudness on the full-rate stereo signal), after a warm-up run so numba's
  compilation is not counted;
- ``transcode`` against the bare ffmpeg command writing the same files, and one ffmpeg
  process writing HLS + MP3 against two processes (one after the other, and side by side).

On a generated 3-hour 48 kHz stereo WAV (2 GB): peak memory of probe, analyze and
transcode, each run in a child process of its own: the child's VmHWM from
/proc/self/status as it ends, and its ffmpeg children's, polled from /proc every 0.1 s.
(ru_maxrss would not do: a forked child starts with its parent's high-water mark.)

Options: --minutes (10), --hours (3; 0 skips the long runs), --repeats (3: the best of
N for each timing, which on a shared machine is the least disturbed), --skip-librosa.
Threads are pinned to one (OMP/OpenBLAS/numba) so CPU seconds mean one core's.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from backend.media.analysis import ANALYSIS_RATE, analyze  # noqa: E402
from backend.media.analysis.key import KeyEstimator  # noqa: E402
from backend.media.analysis.loudness import LoudnessMeter, channel_weights  # noqa: E402
from backend.media.analysis.peak import TruePeakMeter  # noqa: E402
from backend.media.analysis.tempo import TempoEstimator  # noqa: E402
from backend.media.analysis.waveform import ZOOM_LEVELS, WaveformBuilder  # noqa: E402
from backend.media.decode import Decoding, PcmFormat, find_ffmpeg  # noqa: E402
from backend.media.probe import probe  # noqa: E402
from backend.media.transcode import LoudnessMeasurement, outputs, transcode  # noqa: E402
from tests import media_fixtures as mf  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "backline-bench-media"
RATE = 48000


# --- measuring -----------------------------------------------------------------------


@dataclass
class Timing:
    wall_s: float
    cpu_s: float  # this process + waited-for children (ffmpeg)
    child_cpu_s: float

    def rt(self, audio_s: float) -> float:
        return audio_s / self.cpu_s if self.cpu_s else float("inf")


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Timing, Any]:
    own0, child0 = _cpu()
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    own1, child1 = _cpu()
    child = child1 - child0
    return Timing(wall, own1 - own0 + child, child), result


def best(fn: Callable[[], Any], repeats: int) -> tuple[Timing, Any]:
    """The run with the least CPU of ``repeats`` (wall from the least-wall run)."""
    runs = [timed(fn) for _ in range(repeats)]
    by_cpu = min(runs, key=lambda run: run[0].cpu_s)
    wall = min(run[0].wall_s for run in runs)
    return Timing(wall, by_cpu[0].cpu_s, by_cpu[0].child_cpu_s), by_cpu[1]


def row(name: str, timing: Timing, audio_s: float, note: str = "") -> str:
    return (
        f"| {name} | {timing.rt(audio_s):,.0f}x | {timing.cpu_s:.2f} "
        f"({timing.child_cpu_s:.2f}) | {timing.wall_s:.2f} | {note} |"
    )


TABLE_HEAD = [
    "| step | realtime (audio s / CPU s) | CPU s (of which ffmpeg) | wall s | note |",
    "|---|---|---|---|---|",
]


# --- inputs --------------------------------------------------------------------------


def take(seconds: float) -> Path:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"take-{round(seconds)}s.wav"
    if not path.exists():
        partial = path.with_suffix(".partial")
        mf.write_wav_blocks(partial, mf.rehearsal_blocks(seconds, sample_rate=RATE), RATE, 2)
        partial.rename(path)
    return path


def encoded(source: Path, fmt: str) -> Path:
    suffix = mf.ENCODINGS[fmt][0]
    path = source.with_name(f"{source.stem}-{fmt}{suffix}")
    if not path.exists():
        if fmt == "webm":
            mf.media_recorder_webm(source, path)
        else:
            mf.encode(source, path, fmt)
    return path


# --- probe and analysis --------------------------------------------------------------


def probe_rows(source: Path, audio_s: float, repeats: int) -> list[str]:
    lines = []
    for fmt in ("wav", "flac", "mp3", "webm"):
        path = source if fmt == "wav" else encoded(source, fmt)
        timing, found = best(lambda path=path: probe(path), repeats)
        note = f"{found.codec}, {found.duration_ms / 1000:.2f} s measured"
        lines.append(row(f"probe {fmt}", timing, audio_s, note))
    quick, _ = best(lambda: probe(source, verify=False), repeats)
    lines.append(row("probe wav, verify=False", quick, audio_s, "header only, no decode"))
    return lines


def decoded(path: Path, fmt: PcmFormat) -> tuple[Timing, list[np.ndarray], int, int, int]:
    """Every chunk of one stream, kept (for feeding the analysers alone)."""

    def run() -> tuple[list[np.ndarray], int, int, int]:
        with Decoding(path, [fmt]) as decoding:
            stream = decoding.streams[0]
            return (
                [chunk for _, chunk in decoding],
                stream.sample_rate,
                stream.channels,
                stream.channel_mask,
            )

    timing, (chunks, rate, channels, mask) = timed(run)
    return timing, chunks, rate, channels, mask


def _drain(path: Path) -> int:
    """Both of analyze()'s streams decoded into Python and dropped: its decode cost."""
    formats = [PcmFormat(), PcmFormat(sample_rate=ANALYSIS_RATE, channels=1)]
    with Decoding(path, formats) as decoding:
        return sum(len(chunk) for _, chunk in decoding)


def analysis_rows(path: Path, audio_s: float, repeats: int) -> tuple[list[str], Timing]:
    lines = []
    both, _ = best(lambda: _drain(path), repeats)
    native_t, native, rate, channels, mask = decoded(path, PcmFormat())
    mono_t, mono, _, _, _ = decoded(path, PcmFormat(sample_rate=ANALYSIS_RATE, channels=1))
    lines.append(row("decode, file's rate and channels", native_t, audio_s, "into Python"))
    lines.append(row("decode, 44.1 kHz mono", mono_t, audio_s, "into Python"))
    lines.append(row("decode, both streams (as analyze)", both, audio_s, "one ffmpeg"))

    def feed(make: Callable[[], Any], chunks: list[np.ndarray], mono_feed: bool) -> Any:
        analyser = make()
        for chunk in chunks:
            analyser.feed(chunk[:, 0] if mono_feed else chunk)
        return analyser

    parts: list[tuple[str, Callable[[], Any], list[np.ndarray], bool, Callable[[Any], str]]] = [
        (
            "loudness (BS.1770 + LRA)",
            lambda: LoudnessMeter(rate, channel_weights(channels, mask)),
            native,
            False,
            lambda a: f"{a.result().integrated_lufs:.1f} LUFS",
        ),
        (
            "true peak",
            lambda: TruePeakMeter(channels),
            native,
            False,
            lambda a: f"{a.dbtp():.1f} dBTP",
        ),
        (
            "waveform (3 zoom levels)",
            lambda: WaveformBuilder(rate, ZOOM_LEVELS),
            native,
            False,
            lambda a: f"{len(a.result())} levels",
        ),
        ("tempo", TempoEstimator, mono, True, lambda a: f"{a.result().bpm:.1f} BPM"),
        (
            "key",
            KeyEstimator,
            mono,
            True,
            lambda a: f"{a.result().key} {a.result().scale}",
        ),
    ]
    for name, make, chunks, mono_feed, describe in parts:
        timing, analyser = best(
            lambda make=make, chunks=chunks, mono_feed=mono_feed: feed(make, chunks, mono_feed),
            repeats,
        )
        # result() is where tempo and key do their work on what they gathered.
        finish, note = timed(lambda analyser=analyser, describe=describe: describe(analyser))
        total = Timing(timing.wall_s + finish.wall_s, timing.cpu_s + finish.cpu_s, 0.0)
        lines.append(row(f"{name}, analyser alone", total, audio_s, note))
    del native, mono
    whole, result = best(lambda: analyze(path), repeats)
    note = (
        f"{result.bpm:.1f} BPM, {result.key} {result.scale}, {result.loudness_lufs:.1f} LUFS, "
        f"{result.true_peak_dbtp:.1f} dBTP"
    )
    lines.append(row("**analyze(): all of it, one decode**", whole, audio_s, note))
    return lines, whole


# --- librosa -------------------------------------------------------------------------

# Krumhansl-Kessler key profiles (major, minor), from C.
_KK_MAJOR = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]
_KK_MINOR = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]


def librosa_pipeline(path: Path) -> dict[str, Any]:
    """Tempo, key and integrated loudness the way a librosa user would."""
    import librosa
    import pyloudnorm
    import soundfile

    y, sr = librosa.load(str(path), sr=22050, mono=True)
    tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr).mean(axis=1)
    scores = []
    for scale, profile in (("major", _KK_MAJOR), ("minor", _KK_MINOR)):
        for tonic in range(12):
            rotated = np.roll(profile, tonic)
            scores.append((float(np.corrcoef(chroma, rotated)[0, 1]), mf.NOTES[tonic], scale))
    _, key, scale = max(scores)
    data, rate = soundfile.read(str(path))
    lufs = pyloudnorm.Meter(rate).integrated_loudness(data)
    return {"bpm": float(np.atleast_1d(tempo)[0]), "key": f"{key} {scale}", "lufs": float(lufs)}


def librosa_rows(path: Path, audio_s: float, ours: Timing) -> list[str]:
    try:
        import librosa  # noqa: F401
        import pyloudnorm  # noqa: F401
    except ImportError:
        return ["librosa comparison skipped: run with `uv run --group bench`"]
    librosa_pipeline(take(20))  # warm-up: numba compiles beat tracking on first use
    timing, found = timed(lambda: librosa_pipeline(path))
    note = f"{found['bpm']:.1f} BPM, {found['key']}, {found['lufs']:.1f} LUFS (pyloudnorm)"
    return [
        row("librosa + pyloudnorm: tempo, key, loudness", timing, audio_s, note),
        f"| **ours / librosa** | **{timing.cpu_s / ours.cpu_s:.1f}x less CPU** | | "
        f"{timing.wall_s / ours.wall_s:.1f}x less wall | ours does true peak, LRA, waveform too |",
    ]


# --- transcode -----------------------------------------------------------------------


def bare_ffmpeg(source: Path, out: Path, *, hls: bool, mp3: bool) -> None:
    """The command transcode() runs, typed by hand: same outputs, no progress, no checks."""
    probed = probe(source, verify=False)
    args = [find_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error"]
    args += ["-i", str(source)]
    if hls:
        (out / "hls").mkdir(parents=True)
        args += outputs.hls_args(out / "hls", channels=probed.channels)
    if mp3:
        out.mkdir(parents=True, exist_ok=True)
        args += outputs.mp3_args(
            out / outputs.MP3_FILE, sample_rate=probed.sample_rate, channels=probed.channels
        )
    subprocess.run(args, check=True)


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def transcode_rows(source: Path, audio_s: float, repeats: int) -> list[str]:
    work = CACHE / "out"
    probed = probe(source, verify=False)
    found = analyze(source)
    measured = LoudnessMeasurement.from_analysis(
        integrated_lufs=found.loudness_lufs,
        range_lu=found.loudness_range_lu,
        true_peak_dbtp=found.true_peak_dbtp,
    )
    lines = []
    runs: dict[str, Timing] = {}
    cases: dict[str, Callable[[], Any]] = {
        "transcode(): HLS + MP3, one ffmpeg": lambda: transcode(
            source, fresh(work / "a"), probed=probed
        ),
        "bare ffmpeg: HLS + MP3, one process": lambda: bare_ffmpeg(
            source, fresh(work / "b"), hls=True, mp3=True
        ),
        "transcode(): HLS only": lambda: transcode(
            source, fresh(work / "c"), mp3=False, probed=probed
        ),
        "bare ffmpeg: HLS only": lambda: bare_ffmpeg(
            source, fresh(work / "d"), hls=True, mp3=False
        ),
        "bare ffmpeg: MP3 only": lambda: bare_ffmpeg(
            source, fresh(work / "e"), hls=False, mp3=True
        ),
        "bare ffmpeg: HLS, then MP3 (two processes)": lambda: (
            bare_ffmpeg(source, fresh(work / "f"), hls=True, mp3=False),
            bare_ffmpeg(source, fresh(work / "g"), hls=False, mp3=True),
        ),
        "bare ffmpeg: HLS and MP3 side by side (two processes)": lambda: _side_by_side(
            source, work
        ),
        "transcode(): normalised rendition only (2 passes)": lambda: transcode(
            source, fresh(work / "h"), hls=False, mp3=False, normalized=True, probed=probed
        ),
        "transcode(): normalised only, measured= from analyze() (1 pass)": lambda: transcode(
            source,
            fresh(work / "m"),
            hls=False,
            mp3=False,
            normalized=True,
            probed=probed,
            measured=measured,
        ),
        "transcode(): HLS + MP3 + normalised": lambda: transcode(
            source, fresh(work / "i"), normalized=True, probed=probed
        ),
    }
    # Round-robin rather than case after case: on a shared machine the load drifts, and
    # ours and bare should meet the same load.
    timings: dict[str, list[Timing]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            timings[name].append(timed(case)[0])
    for name, measured in timings.items():
        by_cpu = min(measured, key=lambda timing: timing.cpu_s)
        wall = min(timing.wall_s for timing in measured)
        runs[name] = Timing(wall, by_cpu.cpu_s, by_cpu.child_cpu_s)
        lines.append(row(name, runs[name], audio_s))
    for ours, bare in (
        ("transcode(): HLS + MP3, one ffmpeg", "bare ffmpeg: HLS + MP3, one process"),
        ("transcode(): HLS only", "bare ffmpeg: HLS only"),
    ):
        a, b = runs[ours], runs[bare]
        cpu, wall = a.cpu_s / b.cpu_s, a.wall_s / b.wall_s
        lines.append(f"| **{ours} / bare** | CPU {cpu:.3f}x | wall {wall:.3f}x | | |")
    one = runs["bare ffmpeg: HLS + MP3, one process"]
    seq = runs["bare ffmpeg: HLS, then MP3 (two processes)"]
    par = runs["bare ffmpeg: HLS and MP3 side by side (two processes)"]
    lines.append(
        f"| **one process / two** | CPU {one.cpu_s / seq.cpu_s:.2f}x | wall "
        f"{one.wall_s / seq.wall_s:.2f}x of sequential, {one.wall_s / par.wall_s:.2f}x of "
        "side by side | | |"
    )
    shutil.rmtree(work, ignore_errors=True)
    return lines


def _side_by_side(source: Path, work: Path) -> None:
    threads = [
        threading.Thread(target=bare_ffmpeg, args=(source, fresh(work / n)), kwargs=kw)
        for n, kw in (("j", {"hls": True, "mp3": False}), ("k", {"hls": False, "mp3": True}))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- peak memory on a long file ------------------------------------------------------


def _hwm_kb(pid: int | str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def peak_memory(operation: str, path: Path) -> dict[str, Any]:
    """Run ``operation`` on ``path`` in a child; its own peak and its ffmpeg's."""
    command = [sys.executable, __file__, "--child", operation, str(path)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    ffmpeg_peak: dict[int, int] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for child in _children_of(proc.pid):
                ffmpeg_peak[child] = max(ffmpeg_peak.get(child, 0), _hwm_kb(child))
            done.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    stdout, _ = proc.communicate()
    done.set()
    watcher.join()
    report = json.loads(stdout.strip().splitlines()[-1])
    report["wall_s"] = time.perf_counter() - start
    report["ffmpeg_kb"] = max(ffmpeg_peak.values(), default=0)
    return report


def child(operation: str, path: Path) -> None:
    """In the child: the operation, then this process's high-water mark."""
    start_cpu = _cpu()
    if operation == "probe":
        found: Any = probe(path)
        what = f"{found.duration_ms / 1000:.0f} s"
    elif operation == "imports":
        what = "the modules the others import, nothing run"
    elif operation == "analyze":
        found = analyze(path)
        what = f"{found.bpm:.1f} BPM, {found.loudness_lufs:.1f} LUFS"
    else:
        out = Path(tempfile.mkdtemp(prefix="bench-transcode-", dir=CACHE))
        try:
            found = transcode(path, out)
            what = f"{len(found.files)} files"
        finally:
            shutil.rmtree(out, ignore_errors=True)
    end_cpu = _cpu()
    cpu = (end_cpu[0] - start_cpu[0]) + (end_cpu[1] - start_cpu[1])
    print(json.dumps({"python_kb": _hwm_kb("self"), "cpu_s": cpu, "what": what}))


def memory_rows(hours: float) -> list[str]:
    long_take = take(hours * 3600)
    lines = [
        "| operation | Python peak MB | ffmpeg peak MB | sum MB | CPU s | wall s | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for operation in ("imports", "probe", "analyze", "transcode"):
        report = peak_memory(operation, long_take)
        py_mb, ff_mb = report["python_kb"] / 1024, report["ffmpeg_kb"] / 1024
        lines.append(
            f"| {operation} | {py_mb:.0f} | {ff_mb:.0f} | {py_mb + ff_mb:.0f} | "
            f"{report['cpu_s']:.0f} | {report['wall_s']:.0f} | {report['what']} |"
        )
    return lines


# --- the run -------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ffmpeg = subprocess.run([find_ffmpeg(), "-version"], capture_output=True, text=True)
    return [
        f"- machine: nproc {len(os.sched_getaffinity(0))}, {cpu}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"{ffmpeg.stdout.splitlines()[0].split(' Copyright')[0]}",
    ]


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-librosa", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("OPERATION", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    audio_s = args.minutes * 60
    source = take(audio_s)
    print(f"## media.py — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(*machine(), sep="\n")
    print(f"- load average before: {load()}")
    print(f"\n{args.minutes:g}-minute take, 48 kHz stereo WAV; best of {args.repeats}\n")
    print(*TABLE_HEAD, sep="\n")
    print(*probe_rows(source, audio_s, args.repeats), sep="\n", flush=True)
    analysis, ours = analysis_rows(source, audio_s, args.repeats)
    print(*analysis, sep="\n", flush=True)
    if not args.skip_librosa:
        print(*librosa_rows(source, audio_s, ours), sep="\n", flush=True)
    print(*transcode_rows(source, audio_s, args.repeats), sep="\n", flush=True)
    print(f"- load average after the 10-minute runs: {load()}")
    if args.hours > 0:
        print(f"\nPeak memory, {args.hours:g}-hour 48 kHz stereo WAV, each in a child process\n")
        print(*memory_rows(args.hours), sep="\n", flush=True)
        print(f"- load average after: {load()}")


if __name__ == "__main__":
    main()
