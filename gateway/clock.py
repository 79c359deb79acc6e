"""The gateway's own clock health, from the kernel's NTP discipline state (``adjtimex(2)``).

The gateway stamps readings from devices with unset clocks and corrects skewed ones with its
own clock, so the platform needs to know whether that clock is itself trustworthy. Whatever
disciplines the clock on the Pi (systemd-timesyncd, chrony, ntpd) tells the kernel, and the
kernel answers a read-only ``adjtimex`` (``modes = 0``, no privilege needed) with:

- ``status`` bit ``STA_UNSYNC``: set while no time daemon vouches for the clock;
- ``offset``: the phase correction the kernel is still slewing in (reference minus local
  clock), in microseconds, or nanoseconds when ``STA_NANO`` is set;
- ``maxerror`` / ``esterror``: maximum and estimated error in microseconds (the kernel
  grows ``maxerror`` by 500 ppm while undisciplined and sets ``STA_UNSYNC`` past 16 s).

:func:`interpret` turns one reading into :class:`ClockHealth` (pure, unit-tested with
hand-made values); :func:`read_kernel_clock` does the syscall and returns ``None`` where
there is no ``adjtimex`` (not Linux, or the call fails).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# <linux/timex.h>
STA_UNSYNC = 0x0040
STA_NANO = 0x2000
TIME_ERROR = 5  # adjtimex's return value: clock not synchronised
MAXERROR_UNSYNC_US = 16_000_000  # NTP_PHASE_LIMIT: the kernel gives up on the clock here


@dataclass(frozen=True)
class TimexReading:
    """The fields of ``struct timex`` the gateway uses, plus the call's return value."""

    state: int
    status: int
    offset: int
    maxerror: int
    esterror: int


@dataclass(frozen=True)
class ClockHealth:
    synchronised: bool
    # Gateway clock minus the reference clock; None while unsynchronised (meaningless then).
    offset_s: float | None
    max_error_s: float
    est_error_s: float


def interpret(t: TimexReading) -> ClockHealth:
    """What the kernel's NTP state says about the gateway clock."""
    synchronised = not (t.status & STA_UNSYNC) and t.state != TIME_ERROR and t.maxerror < MAXERROR_UNSYNC_US
    unit = 1e-9 if t.status & STA_NANO else 1e-6
    # The kernel's offset is the correction still to apply (reference - local); the status
    # reports the gateway's error (local - reference), hence the sign flip.
    offset_s = -t.offset * unit if synchronised else None
    return ClockHealth(
        synchronised=synchronised,
        offset_s=offset_s,
        max_error_s=t.maxerror * 1e-6,
        est_error_s=t.esterror * 1e-6,
    )


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h> (glibc) / <linux/timex.h>, in declaration order; the
    # trailing reserved ints are part of the ABI, so the kernel may write them.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


def read_timex() -> TimexReading | None:
    """One read-only ``adjtimex`` call; None where it does not exist or fails."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError) as err:
        logger.info("adjtimex_unavailable error=%s", err)
        return None
    adjtimex.argtypes = [ctypes.POINTER(_Timex)]
    adjtimex.restype = ctypes.c_int
    tx = _Timex()
    tx.modes = 0  # read only
    state = adjtimex(ctypes.byref(tx))
    if state < 0:
        logger.info("adjtimex_failed errno=%d", ctypes.get_errno())
        return None
    return TimexReading(state=state, status=tx.status, offset=tx.offset, maxerror=tx.maxerror, esterror=tx.esterror)


def read_kernel_clock() -> ClockHealth | None:
    """The gateway clock's health now, or None where the kernel cannot tell."""
    reading = read_timex()
    return interpret(reading) if reading is not None else None
