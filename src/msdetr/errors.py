"""User-facing errors: one clear line naming the file/record and what to do."""


class MsdetrError(Exception):
    """An error caused by user input (config, data, checkpoint, arguments).

    The CLI prints it as a single line without a traceback.
    """
