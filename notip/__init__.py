"""NoTIP platform daemons on Trio."""

__version__ = "0.1.0"
