"""Errors that the command line reports as one line with exit code 2.

Anything a user can fix (a bad file, a missing dataset, an unknown setting) raises a
:class:`HinasError` whose message names the thing and the fix. Programming errors stay
ordinary exceptions so their tracebacks reach us.
"""


class HinasError(Exception):
    """A problem with the user's input; the message says what and how to fix it."""


class GenotypeError(HinasError, ValueError):
    """A genotype file or object is malformed."""


class ConfigError(HinasError, ValueError):
    """An unknown or ill-typed setting."""


class DataError(HinasError):
    """A dataset or image that cannot be used as asked."""
