"""The one exception type users see as a one-line message instead of a traceback."""


class LangNeuronError(Exception):
    """A problem with the user's input or environment, reported as one line by the CLI.

    Raised instead of letting library exceptions (KeyError, RuntimeError from torch, ...) escape,
    so that every command ends with a message that names the problem and a non-zero exit code.
    """
