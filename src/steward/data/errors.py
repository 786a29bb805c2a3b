"""The data package's error (its own module, so every module of the package can raise it)."""

from __future__ import annotations

from steward.errors import StewardError


class DataError(StewardError, ValueError):
    """A data source or tokenizer that cannot be used; the message names the config key and the fix."""
