"""Homework Bridge: therapy homework from the EHR to the client and back as a note."""

__version__ = "0.1.0"
