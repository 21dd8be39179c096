"""EdgeShare: tokenized revenue shares for edge AI-inference nodes."""

__version__ = "0.1.0"
