"""comp: a staged Keras/TensorFlow pipeline from a competition folder to a submission.

``comp.run(competition=..., budget="15m", **overrides)`` runs it from Python and returns a
``comp.RunResult`` (``comp.interface``); ``comp run ...`` is the same from a shell.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Imported on first use: `import comp` stays light for the CLI and for plugins.
    if name in ("run", "RunResult"):
        from comp import interface

        return getattr(interface, name)
    raise AttributeError(f"module 'comp' has no attribute {name!r}")
