"""Limits on untrusted media, checked before anything is decoded: which demuxers may open a file, and how many
pixels a video frame or an image may claim. Pure: no PyAV or OpenCV here, only header bytes."""

from __future__ import annotations

import struct

# Demuxers allowed to open an upload (FFmpeg's `format_whitelist`). Playlists and scripts (hls, concat, dash,
# ffmetadata, image2 sequences, tee) are left out: with only the `file` protocol whitelisted they could still read
# other local files. A format not listed is refused before its header is parsed.
VIDEO_DEMUXERS = ("mov", "mp4", "matroska", "webm", "avi", "mpegts", "mpeg", "flv", "ogg", "asf", "h264", "hevc")

# 8K UHD: a frame that claims more is refused before a single frame is decoded (each one would take
# width * height * 3 bytes as BGR, and the decoder's threads hold several).
MAX_VIDEO_SIDE = 8192
MAX_VIDEO_PIXELS = 7680 * 4320

# For the container and every stream's decoder: `max_pixels` stops the decoder itself (FFmpeg decodes a first
# frame while it probes the streams, before we see the size) from allocating a larger frame.
OPEN_OPTIONS = {
    "protocol_whitelist": "file",
    "format_whitelist": ",".join(VIDEO_DEMUXERS),
    "max_pixels": str(MAX_VIDEO_PIXELS),
}
# For a sound track alone (the analysis API's spectrogram): the video demuxers (the audio of a video) and audio-only
# formats. The same rule: no playlists, no scripts.
AUDIO_DEMUXERS = (*VIDEO_DEMUXERS, "wav", "w64", "aiff", "flac", "mp3", "aac", "caf")
AUDIO_OPEN_OPTIONS = {**OPEN_OPTIONS, "format_whitelist": ",".join(AUDIO_DEMUXERS)}
# Images for `python -m pose image` and `POST /api/analyze/image`: 50 MP (a phone's full-size photo is 12-48 MP).
MAX_IMAGE_SIDE = 16384
MAX_IMAGE_PIXELS = 50_000_000


class MediaLimitError(ValueError):
    """The media claims a size beyond the limits; the message says which."""


def check_video_size(width: int, height: int) -> None:
    if width > MAX_VIDEO_SIDE or height > MAX_VIDEO_SIDE or width * height > MAX_VIDEO_PIXELS:
        raise MediaLimitError(
            f"the video is {width}x{height}: at most {MAX_VIDEO_SIDE} pixels a side and 7680x4320 in all"
        )


def check_image_size(width: int, height: int) -> None:
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise MediaLimitError(
            f"the image is {width}x{height}: at most {MAX_IMAGE_SIDE} pixels a side and "
            f"{MAX_IMAGE_PIXELS / 1e6:g} megapixels"
        )


JPEG_SEARCH_BYTES = 1 << 20  # a JPEG's markers are searched this far for its size


def header_image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an encoded PNG, JPEG, GIF, BMP or WebP image's header, without decoding; None for
    other formats."""
    head = data[:64]
    if len(head) < 30:  # shorter than any of these headers (a truncated file is refused by its decoder)
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return w, h
    if head[:6] in (b"GIF87a", b"GIF89a"):
        w, h = struct.unpack("<HH", head[6:10])
        return w, h
    if head.startswith(b"BM") and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        return abs(w), abs(h)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(data[2 : 2 + JPEG_SEARCH_BYTES])
    return None


def check_image_header(data: bytes) -> None:
    """MediaLimitError when an encoded image's header claims more pixels than the limits allow."""
    size = header_image_size(data)
    if size is not None:
        check_image_size(*size)


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The size in the first SOFn marker (the first 1 MiB is searched)."""
    i = 0
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None
