"""controlplane.shared.audio: every accepted encoding comes out as 8 kHz mono 16-bit; bad input is a 422."""

from __future__ import annotations

import math
import struct
from array import array

import pytest

from controlplane.shared.audio import AudioRejected, measure, normalize, read_wav, write_wav


def tone(seconds: float, rate: int, amplitude: float = 0.5, freq: float = 440.0) -> list[float]:
    return [amplitude * math.sin(2 * math.pi * freq * i / rate) for i in range(int(seconds * rate))]


def wav(samples: list[float], rate: int, *, channels: int = 1, bits: int = 16, tag: int = 1,
        extensible: bool = False) -> bytes:
    frames = [s for s in samples for _ in range(channels)]
    if tag == 3:
        body = array("f" if bits == 32 else "d", frames).tobytes()
    elif bits == 8:
        body = bytes(int(s * 127) + 128 for s in frames)
    elif bits == 16:
        body = array("h", (int(s * 32767) for s in frames)).tobytes()
    elif bits == 24:
        body = b"".join(struct.pack("<i", int(s * 8388607))[:3] for s in frames)
    else:
        body = array("i", (int(s * 2147483647) for s in frames)).tobytes()
    block = channels * bits // 8
    fmt_tag = 0xFFFE if extensible else tag
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + b"\x00" * 14
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"LIST" + struct.pack("<I", 3) + b"abc\x00"
    chunks += b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.mark.parametrize(("rate", "channels", "bits", "tag", "extensible"), [
    (8000, 1, 16, 1, False), (44100, 2, 16, 1, False), (48000, 1, 24, 1, False), (16000, 2, 32, 1, True),
    (22050, 1, 8, 1, False), (11025, 1, 32, 3, False), (4000, 1, 16, 1, False), (96000, 6, 64, 3, True),
])
def test_every_encoding_becomes_8k_mono_16bit_of_the_same_length_and_level(
        rate: int, channels: int, bits: int, tag: int, extensible: bool) -> None:
    out = normalize(wav(tone(2.0, rate), rate, channels=channels, bits=bits, tag=tag, extensible=extensible),
                    max_bytes=50_000_000, max_seconds=10)
    info = read_wav(out)
    assert (info.format_tag, info.channels, info.rate, info.bits) == (1, 1, 8000, 16)
    stats = measure(out)
    assert abs(stats.seconds - 2.0) < 0.01
    assert abs(stats.rms - 0.5 / math.sqrt(2)) < 0.03  # a 440 Hz sine keeps its level through the filter


def test_g711_mulaw_and_alaw_decode_to_the_same_level() -> None:
    for tag in (6, 7):
        silence_byte = 0xFF if tag == 7 else 0xD5
        body = bytes([silence_byte]) * 8000
        fmt = struct.pack("<HHIIHH", tag, 1, 8000, 8000, 1, 8)
        data = (b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
                + b"data" + struct.pack("<I", len(body)) + body)
        stats = measure(normalize(data, max_bytes=100_000, max_seconds=5))
        assert stats.seconds == 1.0
        assert stats.rms < 0.001  # the silence code decodes to (almost) zero


@pytest.mark.parametrize(("data", "reason"), [
    (b"ID3\x04\x00" + b"\x00" * 100, "unsupported_type"),
    (b"\xff\xfb\x90\x00" + b"\x00" * 100, "unsupported_type"),
    (b"OggS" + b"\x00" * 100, "unsupported_type"),
    (b"hello world, not audio", "unsupported_type"),
    (b"", "empty"),
    (b"RIFF\x00\x00\x00\x00WAVEjunk", "malformed"),
])
def test_what_is_not_a_wav_we_take_is_a_422_naming_the_field(data: bytes, reason: str) -> None:
    with pytest.raises(AudioRejected) as caught:
        normalize(data, max_bytes=1000, max_seconds=10, field="greeting")
    assert caught.value.status == 422 and caught.value.reason == reason
    assert caught.value.field == "greeting" and caught.value.errors[0].field == "greeting"


def test_mp3_is_named_in_the_reason() -> None:
    with pytest.raises(AudioRejected, match="MP3 is not supported"):
        normalize(b"ID3\x03" + b"\x00" * 50, max_bytes=1000, max_seconds=10)


def test_size_and_duration_limits() -> None:
    data = wav(tone(3.0, 8000), 8000)
    with pytest.raises(AudioRejected) as big:
        normalize(data, max_bytes=len(data) - 1, max_seconds=10)
    assert big.value.reason == "too_large"
    with pytest.raises(AudioRejected) as long:
        normalize(data, max_bytes=len(data), max_seconds=2.5)
    assert long.value.reason == "too_long"


def test_unsupported_wav_encoding_and_bad_header() -> None:
    adpcm = wav(tone(0.1, 8000), 8000).replace(struct.pack("<HH", 1, 1), struct.pack("<HH", 2, 1), 1)
    with pytest.raises(AudioRejected) as caught:
        normalize(adpcm, max_bytes=10_000, max_seconds=1)
    assert caught.value.reason == "unsupported_type"
    too_many = wav(tone(0.1, 8000), 8000, channels=9)
    with pytest.raises(AudioRejected) as bad:
        normalize(too_many, max_bytes=100_000, max_seconds=1)
    assert bad.value.reason == "malformed"


def test_a_data_chunk_longer_than_the_file_is_cut_to_what_is_there() -> None:
    """A recording still being written (Asterisk fixes the sizes on close)."""
    data = bytearray(write_wav([1000] * 8000))
    data[40:44] = struct.pack("<I", 0xFFFFFFF0)
    assert abs(measure(bytes(data)).seconds - 1.0) < 0.001


def test_measure_tells_silence_from_sound() -> None:
    assert measure(write_wav([0] * 8000)).rms == 0.0
    assert measure(write_wav([0] * 8000)).rms_dbfs == -math.inf
    loud = measure(wav(tone(1.0, 8000, 0.25), 8000))
    assert -16 < loud.rms_dbfs < -14
