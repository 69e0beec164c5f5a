"""A corpus of hostile media, generated into a folder: each file is named for what it attacks."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from harness.clips import cut_clip, write_clip

BOMB_SIDE = 20_000  # a 20000x20000 PNG: ~400 KB on disk, 1.2 GB as a BGR image


def truncated_mp4(source: Path, out: Path) -> Path:
    """An MP4 cut in half (its index, written last, is gone)."""
    whole = cut_clip(source, out.with_name("whole.mp4"), 30)
    data = whole.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    whole.unlink()
    return out


def huge_y4m(out: Path, side: int = 100_000) -> Path:
    """A raw-video header claiming side x side pixels, and one frame's worth of nothing, named .mp4."""
    out.write_bytes(f"YUV4MPEG2 W{side} H{side} F30:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + bytes(4096))
    return out


def huge_h264(out: Path, side: int = 8704) -> Path:
    """A real one-frame H.264 MP4 of side x side pixels (FFmpeg accepts it; decoding takes ~side^2 * 4.5 bytes)."""
    blank = np.zeros((side * 3 // 2, side), np.uint8)  # one yuv420p frame
    return write_clip(out, [blank], 1, frame_format="yuv420p", options={"preset": "ultrafast"})


def bomb_png(out: Path, side: int = BOMB_SIDE) -> Path:
    """A valid grey PNG of side x side zero pixels: a few hundred KB that decode to side^2 bytes (x3 as BGR)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    chunks = [compressor.compress(row * 1000) for _ in range(side // 1000)]
    idat = b"".join(chunks) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    out.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return out


def hls_playlist(out: Path, url: str, local: Path) -> Path:
    """An HLS playlist renamed .mp4, naming a URL and a local file."""
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:10", "#EXT-X-VERSION:3"]
    for target in (url, str(local), f"file:{local}"):
        lines += ["#EXTINF:4.0,", target]
    out.write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    return out


def concat_script(out: Path, url: str, local: Path) -> Path:
    """An ffconcat script renamed .mp4, naming a local file and a URL."""
    out.write_text(f"ffconcat version 1.0\nfile '{local}'\nfile '{url}'\n")
    return out


def absurd_wav(out: Path) -> Path:
    """A WAV whose header claims 65535 channels of 32-bit audio at 4 GHz and a 4 GB data chunk."""
    fmt = struct.pack("<HHIIHH", 1, 65535, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFF, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF)
    out.write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + body + bytes(1024))
    return out


def corpus(folder: Path, source: Path, url: str, local: Path) -> dict[str, Path]:
    """Every hostile file, by name. `url`: a loopback URL that must never be fetched; `local`: a real video
    outside the job that must never be read."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "truncated": truncated_mp4(source, folder / "truncated.mp4"),
        "huge-header": huge_y4m(folder / "huge.mp4"),
        "huge-h264": huge_h264(folder / "huge264.mp4"),
        "png-bomb": bomb_png(folder / "bomb.png"),
        "png-bomb-as-mp4": bomb_png(folder / "bomb.mp4"),
        "hls": hls_playlist(folder / "hls.mp4", url, local),
        "concat": concat_script(folder / "concat.mp4", url, local),
        "empty": _empty(folder / "empty.mp4"),
        "absurd-wav": absurd_wav(folder / "absurd.wav"),
    }


def _empty(out: Path) -> Path:
    out.write_bytes(b"")
    return out
