"""Errors meant for users: each says what was wrong, where, and what to do."""


class FedSimError(Exception):
    """Base of every error FedSim raises for a user to read (CLI and GUI show the text only)."""
