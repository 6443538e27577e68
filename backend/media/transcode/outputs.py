"""ffmpeg output arguments for each rendition, and where each lands in the output folder.

    <output>/hls/index.m3u8           HLS v7, fMP4/CMAF: #EXT-X-MAP init.mp4, 6 s
    <output>/hls/init.mp4, seg-00000.m4s, ...
                                      Opus 160 kbps constrained VBR, 48 kHz, mono/stereo
    <output>/fallback.mp3             MP3 VBR V2 (~190 kbps), 44.1 or 48 kHz
    <output>/normalized/index.m3u8    the HLS rendition, loudness-normalised

Playlists name their segments relative to themselves, so a folder can be uploaded
anywhere as it is. Audio packets are all key frames, so segments cut at 6.0 s exactly
(the last one holds the rest).
"""

from __future__ import annotations

from pathlib import Path

HLS_DIR = "hls"
NORMALIZED_DIR = "normalized"
PLAYLIST = "index.m3u8"
INIT_SEGMENT = "init.mp4"
SEGMENT_PATTERN = "seg-%05d.m4s"
MP3_FILE = "fallback.mp3"

SEGMENT_SECONDS = 6
OPUS_BITRATE = "160k"  # constrained VBR: segment sizes stay near 160 kbps x 6 s
OPUS_RATE = 48000  # the only rate Opus really runs at; libopus resamples otherwise
MP3_VBR_QUALITY = "2"  # LAME -V2: ~170-210 kbps, transparent for most listeners
_CD_RATES = {11025, 22050, 44100, 88200, 176400}


def playback_channels(channels: int) -> int:
    """Mono stays mono; anything wider is mixed down to stereo, which every browser
    plays (ffmpeg's downmix keeps centre and surrounds, drops the LFE)."""
    return 1 if channels == 1 else 2


def mp3_rate(sample_rate: int) -> int:
    """44.1 kHz for the CD family, 48 kHz for everything else (8 kHz, 96 kHz, ...)."""
    return 44100 if sample_rate in _CD_RATES else 48000


def hls_args(folder: Path, *, channels: int, audio_filter: str | None = None) -> list[str]:
    """``folder`` relative to ffmpeg's working directory (transcode runs it in the work
    folder): the segment name is a pattern, and a '%' or ':' in the folders above could
    read as part of it or as a protocol."""
    args = ["-map", "0:a:0", "-map_metadata", "-1", "-vn", "-sn", "-dn"]
    if audio_filter:
        args += ["-af", audio_filter]
    args += ["-ac", str(playback_channels(channels)), "-ar", str(OPUS_RATE)]
    args += ["-c:a", "libopus", "-b:a", OPUS_BITRATE, "-vbr", "constrained"]
    args += ["-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod"]
    args += ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", INIT_SEGMENT]
    args += ["-hls_segment_filename", str(folder / SEGMENT_PATTERN), str(folder / PLAYLIST)]
    return args


def mp3_args(path: Path, *, sample_rate: int, channels: int) -> list[str]:
    # The file's own tags are kept (title, artist): the MP3 is what people download.
    args = ["-map", "0:a:0", "-vn", "-sn", "-dn"]
    args += ["-ac", str(playback_channels(channels)), "-ar", str(mp3_rate(sample_rate))]
    args += ["-c:a", "libmp3lame", "-q:a", MP3_VBR_QUALITY, "-f", "mp3", str(path)]
    return args


def measure_args(audio_filter: str) -> list[str]:
    """Decode through ``audio_filter`` (loudnorm's first pass) into nothing."""
    return ["-map", "0:a:0", "-vn", "-sn", "-dn", "-af", audio_filter, "-f", "null", "-"]
