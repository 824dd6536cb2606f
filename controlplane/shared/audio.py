"""Uploaded audio, validated and converted to what Asterisk plays: 8 kHz mono 16-bit PCM WAV.

Pure (no I/O, no audioop: deprecated in 3.11 and gone in 3.13). Every conversion step works
on whole byte strings with slicing, ``bytes.translate`` and ``array`` so the per-sample
Python work is one pass at most; resampling loops over the *output* samples only
(8,000 a second) over a running sum of the input.

Accepted: RIFF/WAVE with PCM 8/16/24/32-bit, IEEE float 32/64-bit, G.711 mu-law and A-law,
WAVE_FORMAT_EXTENSIBLE of those; any rate from 1 kHz to 192 kHz; 1 to 8 channels (mixed
down to mono). MP3, Ogg, FLAC and anything else is refused as an unsupported type: the
caller converts before uploading, the server never runs a decoder over untrusted input.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from dataclasses import dataclass
from itertools import accumulate

from controlplane.shared.problems import Problem

__all__ = ["AudioRejected", "AudioStats", "TARGET_RATE", "WavInfo", "measure", "normalize", "read_wav", "write_wav"]

TARGET_RATE = 8000
_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
_MIN_RATE, _MAX_RATE, _MAX_CHANNELS = 1000, 192_000, 8


class AudioRejected(Problem):
    """422: the upload is not audio we take. ``reason`` is one of ``unsupported_type``,
    ``too_large``, ``too_long``, ``empty``, ``malformed``; ``field`` names the input."""

    def __init__(self, reason: str, detail: str, *, field: str = "audio") -> None:
        super().__init__(422, detail, field=field, code=f"audio_{reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WavInfo:
    """A parsed WAV: its format and where its samples are."""

    format_tag: int
    channels: int
    rate: int
    bits: int
    data: bytes

    @property
    def frames(self) -> int:
        return len(self.data) // (self.channels * (self.bits // 8))

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


@dataclass(frozen=True, slots=True)
class AudioStats:
    """Duration and loudness of a WAV (mixed to mono): ``rms`` is 0..1 of full scale."""

    seconds: float
    rms: float

    @property
    def rms_dbfs(self) -> float:
        return 20 * math.log10(self.rms) if self.rms > 0 else -math.inf


def _sniff(data: bytes) -> str | None:
    """A name for a well-known non-WAV container, to say what was sent."""
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "MP3"
    for magic, name in ((b"OggS", "Ogg"), (b"fLaC", "FLAC"), (b"FORM", "AIFF"), (b"%PDF", "PDF"),
                        (b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"PK\x03\x04", "ZIP")):
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "MP4/M4A"
    return None


def read_wav(data: bytes, *, field: str = "audio") -> WavInfo:
    """Parse a RIFF/WAVE byte string; ``AudioRejected`` when it is not one we can convert.
    A data chunk whose size runs past the end (a recording still being written) is cut to
    what is there."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        kind = _sniff(data)
        what = f"{kind} is not supported" if kind else "not a WAV file"
        raise AudioRejected("unsupported_type", f"{what}: upload a WAV (RIFF/WAVE) file", field=field)
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        chunk_id, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            payload = body
            break
        pos += 8 + size + (size & 1)
    if fmt is None or len(fmt) < 16 or payload is None:
        raise AudioRejected("malformed", "a WAV file needs a fmt and a data chunk", field=field)
    tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]  # the sub-format GUID starts with the plain tag
    supported = {_PCM: (8, 16, 24, 32), _FLOAT: (32, 64), _ALAW: (8,), _MULAW: (8,)}
    if bits not in supported.get(tag, ()):
        raise AudioRejected("unsupported_type",
                            f"WAV encoding {tag:#06x} at {bits} bits is not supported "
                            "(PCM, float, mu-law or A-law)", field=field)
    if not 1 <= channels <= _MAX_CHANNELS or not _MIN_RATE <= rate <= _MAX_RATE or block != channels * bits // 8:
        raise AudioRejected("malformed", f"WAV header out of range ({channels} channels, {rate} Hz)", field=field)
    usable = len(payload) - len(payload) % block
    return WavInfo(tag, channels, rate, bits, bytes(payload[:usable]))


def _g711_table(law: int) -> list[int]:
    out = []
    for byte in range(256):
        if law == _MULAW:
            u = ~byte & 0xFF
            magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
            out.append((0x84 - magnitude) if u & 0x80 else (magnitude - 0x84))
        else:
            a = byte ^ 0x55
            seg, mant = (a & 0x70) >> 4, a & 0x0F
            magnitude = (mant << 4) + 8 if seg == 0 else ((mant << 4) + 0x108) << (seg - 1)
            out.append(magnitude if a & 0x80 else -magnitude)
    return out


def _to_int16(info: WavInfo) -> array[int]:
    """Every sample (channels interleaved) as signed 16-bit."""
    raw, n = info.data, len(info.data) // (info.bits // 8)
    out = array("h")
    if info.format_tag == _PCM and info.bits == 16:
        out.frombytes(raw)
    elif info.format_tag == _PCM and info.bits in (24, 32):
        # keep the two most significant bytes of each little-endian sample
        width, pcm16 = info.bits // 8, bytearray(2 * n)
        pcm16[0::2], pcm16[1::2] = raw[width - 2::width], raw[width - 1::width]
        out.frombytes(bytes(pcm16))
    elif info.format_tag == _PCM:  # 8-bit: unsigned, the high byte with its sign bit flipped
        pcm16 = bytearray(2 * n)
        pcm16[1::2] = raw.translate(bytes(b ^ 0x80 for b in range(256)))
        out.frombytes(bytes(pcm16))
    elif info.format_tag == _FLOAT:
        floats = array("f" if info.bits == 32 else "d")
        floats.frombytes(raw)
        if sys.byteorder == "big":
            floats.byteswap()
        out = array("h", (32767 if f >= 1 else -32768 if f <= -1 else int(f * 32767)
                          for f in floats if f == f))  # NaN dropped
    else:
        table = _g711_table(info.format_tag)
        lo = bytes(v & 0xFF for v in table)
        hi = bytes((v >> 8) & 0xFF for v in table)
        pcm16 = bytearray(2 * n)
        pcm16[0::2], pcm16[1::2] = raw.translate(lo), raw.translate(hi)
        out.frombytes(bytes(pcm16))
    if sys.byteorder == "big" and info.format_tag != _FLOAT:
        out.byteswap()
    return out


def _mono(samples: array[int], channels: int) -> list[int]:
    if channels == 1:
        return samples.tolist()
    lanes = [samples[c::channels] for c in range(channels)]
    return [sum(frame) // channels for frame in zip(*lanes, strict=False)]


def _resample(mono: list[int], rate: int) -> list[int]:
    """To 8 kHz. Down: each output sample is the mean of the input window it covers (a box
    filter: crude anti-aliasing, enough for speech). Up: linear interpolation."""
    if rate == TARGET_RATE or not mono:
        return mono
    count = int(len(mono) * TARGET_RATE / rate)
    step = rate / TARGET_RATE
    if step > 1:
        sums = list(accumulate(mono, initial=0))
        out = []
        for i in range(count):
            lo, hi = int(i * step), min(len(mono), max(int((i + 1) * step), int(i * step) + 1))
            out.append((sums[hi] - sums[lo]) // (hi - lo))
        return out
    last = len(mono) - 1
    out = []
    for i in range(count):
        pos = i * step
        j = int(pos)
        frac = pos - j
        nxt = mono[j + 1] if j < last else mono[j]
        out.append(int(mono[j] + (nxt - mono[j]) * frac))
    return out


def write_wav(samples: list[int] | array[int], rate: int = TARGET_RATE) -> bytes:
    """Mono 16-bit PCM samples as a canonical 44-byte-header WAV."""
    pcm = array("h", samples)
    if sys.byteorder == "big":
        pcm.byteswap()
    body = pcm.tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(body), b"WAVE", b"fmt ", 16, _PCM, 1,
                         rate, rate * 2, 2, 16, b"data", len(body))
    return header + body


def normalize(data: bytes, *, max_bytes: int, max_seconds: float, field: str = "audio") -> bytes:
    """``data`` (an uploaded WAV) as 8 kHz mono 16-bit PCM WAV, or ``AudioRejected``
    (422 naming ``field`` and why: wrong type, too big, too long, empty, malformed).
    The size is checked before parsing and the duration from the header before decoding."""
    if len(data) > max_bytes:
        raise AudioRejected("too_large", f"the file is {len(data)} bytes; at most {max_bytes}", field=field)
    if not data:
        raise AudioRejected("empty", "the file is empty", field=field)
    info = read_wav(data, field=field)
    if info.frames == 0:
        raise AudioRejected("empty", "the WAV file has no audio", field=field)
    if info.seconds > max_seconds:
        raise AudioRejected("too_long", f"the audio lasts {info.seconds:.1f} s; at most {max_seconds:g} s",
                            field=field)
    if info.format_tag == _PCM and info.bits == 16 and info.channels == 1 and info.rate == TARGET_RATE:
        return write_wav(_to_int16(info))  # already right: only the header made canonical
    return write_wav(_resample(_mono(_to_int16(info), info.channels), info.rate))


def measure(data: bytes) -> AudioStats:
    """Duration and RMS of a WAV (any format ``read_wav`` takes), mixed to mono."""
    info = read_wav(data)
    mono = _mono(_to_int16(info), info.channels)
    if not mono:
        return AudioStats(0.0, 0.0)
    rms = math.sqrt(math.fsum(s * s for s in mono) / len(mono)) / 32768
    return AudioStats(info.frames / info.rate, rms)
