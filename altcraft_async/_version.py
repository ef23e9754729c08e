"""The package's version, in a leaf module: the client's User-Agent and the CLI read it without
importing the package's ``__init__`` (which imports them)."""

__version__ = "0.2.0"
