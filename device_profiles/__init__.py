"""egenmon's pure base layer: vocabulary, wire schema, GATT codecs and device profiles.

Entry points: ``device_profiles.registry.match_profile`` (pick a profile for an
advertisement), ``DeviceProfile.decode`` / ``device_profiles.session.DeviceSession``
(bytes to observations), ``device_profiles.observation.to_reading`` (observation to wire
Reading) and the codecs in ``device_profiles.codecs`` (also encoders, for simulators).
See device_profiles/README.md.
"""

# egenmon's version, for every package (pyproject.toml reads it from here).
__version__ = "0.1.0"
