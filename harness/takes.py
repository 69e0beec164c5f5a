"""Recorded takes for the tests and the benchmark, made from real media: the sample footage with a real song
under it (a reference), and the same footage with the song as a phone in a room would record it (a take): the
sound delayed by a known offset, resampled, with reverb and pink noise, by SoX."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import av

from harness.clips import add_sound_stream, source_frames, write_clip, write_sound

FOOTAGE_FPS = 10  # the sample footage's frame rate


def sox(*args: str | Path) -> None:
    """Run SoX (scripts/apt-install.sh installs it: `make setup` does); its complaints become the error."""
    done = subprocess.run(["sox", *map(str, args)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sox {' '.join(map(str, args))}: {done.stderr.strip()}")


def song_excerpt(song: Path, out: Path, start_s: float, seconds: float) -> Path:
    """`seconds` of `song` from `start_s`, as a WAV at the song's own rate."""
    sox(song, out, "trim", f"{start_s}", f"{seconds}")
    return out


def room_recording(
    sound: Path,
    out: Path,
    delay_s: float,
    rate: int,
    seconds: float,
    *,
    noise: float = 0.05,
    reverb: bool = True,
    speed: float = 1.0,
) -> Path:
    """`sound` as a take records it: `delay_s` of silence first (the recording started before the song), then
    at `speed` (1.0: the same clock), with reverb, resampled to `rate` Hz, cut to `seconds`, pink noise of
    amplitude `noise` over it all."""
    with tempfile.TemporaryDirectory(prefix="dancesync-take-") as tmp:
        wet = Path(tmp) / "wet.wav"
        effects = ["gain", "-6", "pad", f"{delay_s}"]
        effects += ["speed", f"{speed}"] if speed != 1.0 else []
        effects += ["reverb", "50", "50", "80"] if reverb else []
        sox(sound, "-c", "1", wet, *effects, "rate", str(rate), "pad", "0", f"{seconds}", "trim", "0", f"{seconds}")
        if not noise:
            wet.replace(out)
            return out
        hiss = Path(tmp) / "noise.wav"
        sox("-n", "-r", str(rate), "-c", "1", hiss, "synth", f"{seconds}", "pinknoise", "vol", f"{noise}")
        sox("-m", wet, hiss, out)
    return out


def footage_with_sound(footage: Path, out: Path, frames: int, sound: Path | None, crf: int = 23) -> Path:
    """The first `frames` frames of the 10 fps `footage` as H.264 with `sound` (None: no audio stream) as AAC."""
    images = (image for _, image in zip(range(frames), source_frames(footage, None, "yuv420p"), strict=False))
    options = {"preset": "ultrafast", "crf": str(crf), "bf": "0"}
    return write_clip(out, images, FOOTAGE_FPS, frame_format="yuv420p", options=options, audio_file=sound)


def with_sound(video: Path, sound: Path, out: Path) -> Path:
    """`video`'s picture stream as it is (packets copied, so every frame decodes to the same pixels) with `sound`
    as AAC under it instead of its own audio."""
    with av.open(str(video)) as source, av.open(str(out), "w", format="mp4") as sink:
        picture = source.streams.video[0]
        copied = sink.add_stream_from_template(picture)
        audio = add_sound_stream(sink, sound)
        for packet in source.demux(picture):
            if packet.dts is None:
                continue
            packet.stream = copied
            sink.mux(packet)
        write_sound(sink, audio, sound)
    return out
