"""The one exception type that the command line turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a file, a field or a value that cannot be used.

    The message must name the file and the field (or annotation / image id) at fault.
    ``autopose`` prints it on one line, with no traceback, and exits with code 2.
    """


def where(path: object, field: str | None = None) -> str:
    """``"path"`` or ``"path: field"``, the prefix every UserError message starts with."""
    return f"{path}: {field}" if field else f"{path}"
