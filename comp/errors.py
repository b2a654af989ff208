"""Errors a user can fix. The CLI prints them as one line and exits non-zero."""


class CompError(Exception):
    """A problem with the user's input, config or environment; message says what to do."""

    exit_code = 2


class ConfigError(CompError):
    """An unknown key, a wrong type or an impossible combination of settings."""


class DataError(CompError):
    """A competition folder that cannot be read as the task needs."""


class PluginError(CompError):
    """A plugin that is missing, ambiguous or fails to import."""


class PartsFailed(CompError):
    """strict=true and some parts of the run failed and were left out; the run still published
    what succeeded (its submission included)."""

    exit_code = 4
