"""The project's error types.

Library code raises these with a plain, one-line message that says what is wrong and what to do;
the CLI prints the message and exits with a non-zero code. Nothing here prints.
"""


class CharLSTMError(Exception):
    """Base class of every error charlstm raises on purpose."""

    exit_code = 1


class UsageError(CharLSTMError):
    """Options that cannot work together or are out of range (exit code 2, like a usage error)."""

    exit_code = 2


class CorpusError(CharLSTMError):
    """A text file that cannot be read, decoded or used for training."""


class VocabularyError(CharLSTMError):
    """Text with characters that the model's vocabulary does not contain."""


class CheckpointError(CharLSTMError):
    """A checkpoint that is missing, corrupt, of another format, or cannot be written."""


class TrainingError(CharLSTMError):
    """Training that cannot go on (for example a loss that stays NaN after recovery)."""


class NothingToDo(CharLSTMError):
    """A command asked for nothing that is left to do (a resumed run already at its end): it says
    so, and how to ask for more, and writes nothing. Not a failure: exit code 0."""

    exit_code = 0
