"""User-facing errors: one clear line that names the problem and the fix."""

from model.parameters import ParameterError

from .scenarios import ScenarioError


class UserError(Exception):
    """A mistake in what the user asked for (bad option, missing file, existing output)."""


USER_ERRORS = (UserError, ScenarioError, ParameterError)
"""Exceptions the CLI reports as one line (exit code 2) instead of a traceback."""
