"""engagement: an open-source web engagement engine."""

__version__ = "0.1.0"
