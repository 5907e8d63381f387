"""Device kinds of ``otaharness load``: a :class:`~otaharness.load.fleet.DeviceFleet` each."""
