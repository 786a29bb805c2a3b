"""The one base class for errors a user can fix. The CLI prints their message as one line (exit 2)."""


class StewardError(Exception):
    """Bad input (config, data, checkpoint, policy, flag): the message names the field and the fix."""


class ConfigError(StewardError, ValueError):
    """Bad configuration. The message is one line that names the key and what is allowed."""


class UserError(StewardError):
    """Bad input given on the command line (a flag or argument of a command or benchmark)."""
