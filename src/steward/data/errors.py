"""The data package's error: its own module so that sources and presets both raise it."""

from steward.errors import StewardError


class DataError(StewardError, ValueError):
    """A data source or tokenizer that cannot be used; the message names the config key and the fix."""
