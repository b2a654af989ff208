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


class FoldFailed(CompError):
    """A model raised while training one fold (a plugin's bug, values it cannot be built
    with). The folds before it are kept; a search's trial fails alone on it, a stage that
    is not a search stops with its one line. ``reason``: the model's own error in one line."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message, reason)  # both in args: it crosses a process boundary (search trials)
        self.reason = reason

    def __str__(self) -> str:
        return self.args[0]


class PartsFailed(CompError):
    """strict=true and some parts of the run failed and were left out; the run still published
    what succeeded (its submission included)."""

    exit_code = 4
