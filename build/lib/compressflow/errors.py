"""One exception type whose message is a single line: what is wrong, and the fix."""


class CompressflowError(Exception):
    """A user-facing error: the message names the bad thing and how to fix it."""

    def __init__(self, what: str, fix: str):
        self.what = what
        self.fix = fix
        super().__init__(f"{what}; fix: {fix}")
