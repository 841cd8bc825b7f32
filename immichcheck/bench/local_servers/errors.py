"""The one error of the throwaway servers."""

from __future__ import annotations

from immichcheck.common.errors import ImmichcheckError


class LocalStackError(ImmichcheckError):
    """The throwaway servers could not be set up (missing binaries, unwritable folder...)."""
