"""The errors a user can cause. Scripts print them as one line and exit with status 2.

Each message names the bad value, the file when there is one, the valid choices and the
fix; anything that is not a KitError is a bug in the kit and keeps its traceback.
"""


class KitError(Exception):
    """A problem the user can fix: bad input, bad config, missing files."""


class ConfigError(KitError):
    """A config file or --set override is wrong."""


class DataError(KitError):
    """Competition data is missing, malformed or inconsistent with the config."""


class SubmissionError(KitError):
    """A submission does not match the competition's sample submission."""


class CheckpointError(KitError):
    """A checkpoint or run folder cannot be used (wrong model, not a run, corrupt)."""


class KaggleError(KitError):
    """The kaggle CLI failed (credentials, rules not accepted, unknown competition)."""
