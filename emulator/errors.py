"""The one exception type the CLI turns into a single clear line and a non-zero exit."""


class EmulatorError(Exception):
    """Bad input or a failed check; the message names what is wrong and where."""

    exit_code = 1
