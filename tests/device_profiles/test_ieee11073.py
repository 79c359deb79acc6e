"""IEEE 11073-20601 SFLOAT/FLOAT: hand-worked vectors, specials, round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles.errors import DecodeError
from device_profiles.ieee11073 import (
    SFLOAT_MANTISSA_MAX,
    Special,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
    float_from_bytes,
    sfloat_bytes,
    sfloat_from_bytes,
)

# SFLOAT: exponent = high nibble (int4), mantissa = low 12 bits (int12).
SFLOAT_VECTORS = [
    (0x0078, 120.0),  # exp 0, mantissa 0x078 = 120
    (0xF16E, 36.6),  # exp 0xF = -1, mantissa 0x16E = 366 -> 36.6
    (0xF4B0, 120.0),  # exp -1, mantissa 0x4B0 = 1200 -> 120.0 (same value, other form)
    (0x0FFF, -1.0),  # exp 0, mantissa 0xFFF = -1
    (0x0803, -2045.0),  # exp 0, mantissa 0x803 = -2045 (most negative ordinary number)
    (0x07FD, 2045.0),  # exp 0, mantissa 0x7FD = 2045 (largest ordinary mantissa)
    (0xB064, 0.001),  # exp 0xB = -5, mantissa 0x064 = 100 -> 100e-5 kg/L = 100 mg/dL
    (0xC037, 0.0055),  # exp 0xC = -4, mantissa 0x037 = 55 -> 0.0055 mol/L = 5.5 mmol/L
    (0x2001, 100.0),  # exp 2, mantissa 1 -> 1e2
    (0x8001, 1e-8),  # exp 0x8 = -8 (most negative exponent)
    (0x7001, 1e7),  # exp 7 (largest exponent)
    (0x0000, 0.0),
]

SFLOAT_SPECIALS = [
    (0x07FF, Special.NAN),
    (0x0800, Special.NRES),
    (0x07FE, Special.POS_INF),
    (0x0802, Special.NEG_INF),
    (0x0801, Special.RESERVED),
]

FLOAT_VECTORS = [
    (0xFF00016E, 36.6),  # exp 0xFF = -1, mantissa 0x00016E = 366
    (0xFE000E4D, 36.61),  # exp -2, mantissa 0x000E4D = 3661
    (0x00000025, 37.0),  # exp 0, mantissa 37
    (0x00FFFFFF, -1.0),  # mantissa 0xFFFFFF = -1
    (0x007FFFFD, 8388605.0),  # largest ordinary mantissa
]

FLOAT_SPECIALS = [
    (0x007FFFFF, Special.NAN),
    (0x00800000, Special.NRES),
    (0x007FFFFE, Special.POS_INF),
    (0x00800002, Special.NEG_INF),
    (0x00800001, Special.RESERVED),
]


@pytest.mark.parametrize(("raw", "value"), SFLOAT_VECTORS)
def test_sfloat_vectors(raw: int, value: float) -> None:
    assert decode_sfloat(raw) == value


@pytest.mark.parametrize(("raw", "special"), SFLOAT_SPECIALS)
def test_sfloat_specials_are_never_numbers(raw: int, special: Special) -> None:
    assert decode_sfloat(raw) is special
    assert encode_sfloat(special) == raw


@pytest.mark.parametrize("exponent", [1, 0xF, 0x8])
def test_sfloat_special_mantissa_with_nonzero_exponent_is_still_no_number(exponent: int) -> None:
    assert decode_sfloat(exponent << 12 | 0x7FF) is Special.NAN


@pytest.mark.parametrize(("raw", "value"), FLOAT_VECTORS)
def test_float_vectors(raw: int, value: float) -> None:
    assert decode_float(raw) == value


@pytest.mark.parametrize(("raw", "special"), FLOAT_SPECIALS)
def test_float_specials(raw: int, special: Special) -> None:
    assert decode_float(raw) is special
    assert encode_float(special) == raw


def test_encoder_prefers_natural_forms() -> None:
    # Devices send 120 mmHg as 0x0078 and 36.6 °C as 366e-1: so do we.
    assert encode_sfloat(120.0) == 0x0078
    assert encode_sfloat(36.6) == 0xF16E
    assert encode_float(36.6) == 0xFF00016E
    assert sfloat_bytes(120.0) == b"\x78\x00"


def test_encoder_maps_float_nan_and_inf_to_specials() -> None:
    assert encode_sfloat(math.nan) == 0x07FF
    assert encode_sfloat(math.inf) == 0x07FE
    assert encode_sfloat(-math.inf) == 0x0802
    assert encode_float(math.nan) == 0x007FFFFF


def test_encoder_rounds_to_best_precision_and_rejects_out_of_range() -> None:
    assert decode_sfloat(encode_sfloat(121.37)) == 121.4  # 1214e-1 is the best 12-bit form
    with pytest.raises(ValueError, match="out of range"):
        encode_sfloat(1e12)


def test_byte_helpers_check_length() -> None:
    assert sfloat_from_bytes(b"\x78\x00") == 120.0
    assert float_from_bytes(bytes.fromhex("6e0100ff")) == 36.6
    with pytest.raises(DecodeError) as err:
        sfloat_from_bytes(b"\x78")
    assert err.value.raw == b"\x78"


mantissas = st.integers(-SFLOAT_MANTISSA_MAX, SFLOAT_MANTISSA_MAX)
exponents = st.integers(-8, 7)


@given(mantissas, exponents)
def test_sfloat_value_round_trip(mantissa: int, exponent: int) -> None:
    value = decode_sfloat(((exponent & 0xF) << 12) | (mantissa & 0xFFF))
    assert isinstance(value, float)
    assert decode_sfloat(encode_sfloat(value)) == value


@given(st.integers(0, 0xFFFF))
def test_every_sfloat_pattern_decodes_to_a_number_or_special(raw: int) -> None:
    value = decode_sfloat(raw)
    assert isinstance(value, Special) or math.isfinite(value)
    assert decode_sfloat(encode_sfloat(value)) == value


@given(st.integers(0, 0xFFFFFFFF))
def test_every_float_pattern_round_trips(raw: int) -> None:
    value = decode_float(raw)
    assert isinstance(value, Special) or math.isfinite(value)
    assert decode_float(encode_float(value)) == value


def test_all_65536_sfloat_patterns_round_trip_exhaustively() -> None:
    for raw in range(0x10000):
        value = decode_sfloat(raw)
        assert decode_sfloat(encode_sfloat(value)) == value, hex(raw)
