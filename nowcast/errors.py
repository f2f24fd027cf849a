"""The one exception type that means "the user can fix this" (exit code 2, no traceback)."""

_WORKER_PREFIX = "Caught "


class UserError(Exception):
    """A problem with the user's input: a file, a config key, an option.

    The message is shown as one line, ``nowcast: error: <message>``; it should name the
    file or config key at fault and say what is wrong with it.

    A UserError raised in a torch DataLoader worker process is raised again in the main
    process with the worker's whole traceback as its message ("Caught UserError in
    DataLoader worker process 0. Original Traceback …"); the original one-line message is
    taken back from that traceback's last line.
    """

    def __init__(self, *args: object):
        if len(args) == 1 and isinstance(args[0], str) and args[0].startswith(_WORKER_PREFIX):
            args = (_original_message(args[0], type(self)),)
        super().__init__(*args)


def _original_message(text: str, cls: type) -> str:
    """The message of ``cls`` in the last line of a re-raised worker traceback (``text``
    itself when it holds none)."""
    prefix = f"{cls.__module__}.{cls.__qualname__}: "
    lines = [line for line in text.splitlines() if line.strip()]
    if "Original Traceback" in text and lines and lines[-1].startswith(prefix):
        return lines[-1][len(prefix) :]
    return text
