"""comp's built-in plugins. They are registered through entry points in pyproject.toml,
exactly as a third-party package registers its own; comp never imports this package."""
