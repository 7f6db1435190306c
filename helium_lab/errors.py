"""Exceptions raised by the planner. Every message names the op, key or file at fault."""


class HeliumError(Exception):
    """Base class of every error helium_lab raises on bad input."""


class GraphError(HeliumError):
    """A workflow graph is malformed: a cycle, an op from another workflow, a bad reference."""


class BindingError(HeliumError):
    """`compile` was given missing, extra or ill-shaped input bindings."""


class ConfigError(HeliumError):
    """An unknown policy, pass, system or other configuration key."""


class CacheStoreError(HeliumError):
    """A prompt-cache store could not be read (callers usually warn and start cold)."""
