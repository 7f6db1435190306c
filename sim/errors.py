"""Errors the simulator raises on bad input. Every message names the call, file or line."""

from helium_lab.errors import HeliumError


class SimError(HeliumError):
    """A request or configuration the simulated engine cannot run (too long, bad knob)."""
