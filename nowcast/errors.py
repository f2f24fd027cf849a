"""The one exception type that means "the user can fix this" (exit code 2, no traceback)."""


class UserError(Exception):
    """A problem with the user's input: a file, a config key, an option.

    The message is shown as one line, ``nowcast: error: <message>``; it should name the
    file or config key at fault and say what is wrong with it.
    """
