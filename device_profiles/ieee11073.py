"""IEEE 11073-20601 numbers: 16-bit SFLOAT and 32-bit FLOAT (the GATT "medfloat16/32").

Both are ``mantissa * 10**exponent`` with two's complement fields:

* SFLOAT: bits 15-12 exponent (int4), bits 11-0 mantissa (int12), little-endian on the air.
* FLOAT:  bits 31-24 exponent (int8), bits 23-0 mantissa (int24), little-endian on the air.

A few mantissa values are reserved as special values (IEEE 11073-20601 §F.8, repeated in
the Bluetooth "Personal Health Devices Transcoding" white paper). They mean "there is no
number here" and must never reach a chart as one, so they decode to :class:`Special`
members, not to floats. We treat the special mantissas as special whatever the exponent
field holds (the standard only defines them with exponent 0; a non-zero exponent is a
malformed special, and the safe reading of it is still "no number").
"""

from __future__ import annotations

import math
from enum import Enum

from device_profiles.errors import DecodeError


class Special(Enum):
    """An IEEE 11073 value that is not a number."""

    NAN = "nan"  # not a number (e.g. a MAP the cuff did not compute)
    NRES = "nres"  # not at this resolution: the value exists but cannot be represented
    POS_INF = "+inf"
    NEG_INF = "-inf"
    RESERVED = "reserved"  # reserved for future use; never emitted by a conforming device


# A decoded IEEE 11073 number: a float, or why there is none.
Num = float | Special

# SFLOAT special mantissas (12-bit two's complement written as unsigned).
_S_NAN, _S_NRES, _S_PINF, _S_NINF, _S_RES = 0x07FF, 0x0800, 0x07FE, 0x0802, 0x0801
_SFLOAT_SPECIALS = {_S_NAN: Special.NAN, _S_NRES: Special.NRES, _S_PINF: Special.POS_INF,
                    _S_NINF: Special.NEG_INF, _S_RES: Special.RESERVED}  # fmt: skip
_SFLOAT_SPECIAL_RAW = {v: k for k, v in _SFLOAT_SPECIALS.items()}
# FLOAT special mantissas (24-bit).
_F_NAN, _F_NRES, _F_PINF, _F_NINF, _F_RES = 0x7FFFFF, 0x800000, 0x7FFFFE, 0x800002, 0x800001
_FLOAT_SPECIALS = {_F_NAN: Special.NAN, _F_NRES: Special.NRES, _F_PINF: Special.POS_INF,
                   _F_NINF: Special.NEG_INF, _F_RES: Special.RESERVED}  # fmt: skip
_FLOAT_SPECIAL_RAW = {v: k for k, v in _FLOAT_SPECIALS.items()}

# Largest mantissa magnitude of an ordinary number: the values above it are the specials
# (0x7FE/0x7FF and 0x800-0x802 for SFLOAT).
SFLOAT_MANTISSA_MAX = 0x7FD  # 2045
FLOAT_MANTISSA_MAX = 0x7FFFFD  # 8388605
SFLOAT_EXP_RANGE = range(-8, 8)
FLOAT_EXP_RANGE = range(-128, 128)


def _scale(mantissa: int, exponent: int) -> float:
    # Divide by an exact power of ten for negative exponents: m / 10**k is correctly
    # rounded, so the same (m, e) always gives the same float and encode can find it again.
    if exponent < 0:
        return mantissa / int(10 ** (-exponent))
    return float(mantissa * int(10**exponent))


def _sfloat_from_raw(raw: int) -> Num:
    mantissa = raw & 0x0FFF
    special = _SFLOAT_SPECIALS.get(mantissa)
    if special is not None:
        return special
    if mantissa >= 0x0800:  # int12 sign
        mantissa -= 0x1000
    exponent = raw >> 12
    if exponent >= 0x8:  # int4 sign
        exponent -= 0x10
    return _scale(mantissa, exponent)


# Every one of the 65,536 SFLOAT bit patterns decoded once at import: decoding in the hot
# path is then one tuple index (the gateway decodes stored-record bursts of hundreds).
SFLOAT_TABLE: tuple[Num, ...] = tuple(_sfloat_from_raw(r) for r in range(0x10000))


def decode_sfloat(raw: int) -> Num:
    """Decode a 16-bit SFLOAT given as an unsigned integer (already little-endian decoded)."""
    return SFLOAT_TABLE[raw & 0xFFFF]


def decode_float(raw: int) -> Num:
    """Decode a 32-bit FLOAT given as an unsigned integer."""
    mantissa = raw & 0xFFFFFF
    special = _FLOAT_SPECIALS.get(mantissa)
    if special is not None:
        return special
    if mantissa >= 0x800000:  # int24 sign
        mantissa -= 0x1000000
    exponent = (raw >> 24) & 0xFF
    if exponent >= 0x80:  # int8 sign
        exponent -= 0x100
    return _scale(mantissa, exponent)


def _mantissa_at(value: float, exp: int) -> int | None:
    try:
        return round(value / int(10**exp)) if exp >= 0 else round(value * int(10 ** (-exp)))
    except OverflowError:  # value * 10**k overflowed to infinity: far too big a mantissa
        return None


def _best_representation(value: float, mant_max: int, exps: range) -> tuple[int, int]:
    """Pick (mantissa, exponent) for ``value``.

    Exact representations are preferred, with the exponent closest to zero first (so 120
    is sent as 120e0, 36.6 as 366e-1, like devices do). Otherwise the most precise one
    that fits (rounded), which is what a device with that resolution would send.
    """
    order = [0, *range(-1, exps.start - 1, -1), *range(1, exps.stop)]
    for exp in order:
        mant = _mantissa_at(value, exp)
        if mant is None or abs(mant) > mant_max:
            continue
        if _scale(mant, exp) == value:
            return mant, exp
    # No exact form: the smallest exponent whose mantissa fits gives the best precision.
    for exp in range(exps.start, exps.stop):
        mant = _mantissa_at(value, exp)
        if mant is not None and abs(mant) <= mant_max:
            return mant, exp
    raise ValueError(f"{value!r} is out of range")


def encode_sfloat(value: Num) -> int:
    """Encode to a 16-bit SFLOAT (unsigned int). Infinite floats map to the INFINITY
    specials and float NaN to NaN; finite values out of range raise ValueError."""
    if isinstance(value, Special):
        return _SFLOAT_SPECIAL_RAW[value]
    if math.isnan(value):
        return _S_NAN
    if math.isinf(value):
        return _S_PINF if value > 0 else _S_NINF
    mant, exp = _best_representation(value, SFLOAT_MANTISSA_MAX, SFLOAT_EXP_RANGE)
    return ((exp & 0xF) << 12) | (mant & 0x0FFF)


def encode_float(value: Num) -> int:
    """Encode to a 32-bit FLOAT (unsigned int); see :func:`encode_sfloat`."""
    if isinstance(value, Special):
        return _FLOAT_SPECIAL_RAW[value]
    if math.isnan(value):
        return _F_NAN
    if math.isinf(value):
        return _F_PINF if value > 0 else _F_NINF
    mant, exp = _best_representation(value, FLOAT_MANTISSA_MAX, FLOAT_EXP_RANGE)
    return ((exp & 0xFF) << 24) | (mant & 0xFFFFFF)


def sfloat_bytes(value: Num) -> bytes:
    return encode_sfloat(value).to_bytes(2, "little")


def float_bytes(value: Num) -> bytes:
    return encode_float(value).to_bytes(4, "little")


def sfloat_from_bytes(data: bytes) -> Num:
    if len(data) != 2:
        raise DecodeError("SFLOAT needs 2 bytes", data)
    return SFLOAT_TABLE[data[0] | data[1] << 8]


def float_from_bytes(data: bytes) -> Num:
    if len(data) != 4:
        raise DecodeError("FLOAT needs 4 bytes", data)
    return decode_float(int.from_bytes(data, "little"))
