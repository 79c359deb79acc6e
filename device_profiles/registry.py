"""The default registry (SIG device types plus the shipped vendor profiles) and
:func:`match_profile`, which the gateway calls for every advertisement it sees."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from device_profiles.profile import DeviceProfile, Registry
from device_profiles.sig import SIG_PROFILES
from device_profiles.vendor import load_profile_dir, packaged_profiles


@cache
def default_registry() -> Registry:
    """Vendor profiles first (model-specific), then the generic SIG device types."""
    return Registry([*packaged_profiles(), *SIG_PROFILES])


def registry_with_dirs(directories: Iterable[Path], base: Registry | None = None) -> Registry:
    """The default registry plus the vendor profiles found in ``directories`` (a region's
    own models); a file with an id already known replaces that profile."""
    extra: list[DeviceProfile] = []
    for d in directories:
        extra.extend(load_profile_dir(d))
    return (base or default_registry()).with_profiles(extra)


def match_profile(
    advertised_service_uuids: Iterable[str],
    name: str | None = None,
    manufacturer_data: Mapping[int, bytes] | None = None,
    *,
    registry: Registry | None = None,
) -> DeviceProfile | None:
    """The profile for an advertisement (bleak's AdvertisementData fields), or None."""
    return (registry or default_registry()).match(advertised_service_uuids, name, manufacturer_data)


def get_profile(profile_id: str, *, registry: Registry | None = None) -> DeviceProfile:
    return (registry or default_registry()).get(profile_id)
