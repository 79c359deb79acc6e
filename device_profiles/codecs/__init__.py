"""GATT codecs: one measurement dataclass per characteristic, with ``from_bytes()``
(raising :class:`~device_profiles.errors.DecodeError`), ``__bytes__`` (the simulators'
encoder) and ``observations()`` (what the gateway stores)."""
