"""One exception type whose message is a single line: what is wrong, and the fix."""

import re

# Terminal colour/style codes (torch puts some in its unpickling errors) and line breaks have no
# place in a one-line message that also lands in log files.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(text: str) -> str:
    return " ".join(_ANSI.sub("", str(text)).split())


class CompressflowError(Exception):
    """A user-facing error: the message names the bad thing and how to fix it."""

    def __init__(self, what: str, fix: str):
        self.what = one_line(what)
        self.fix = one_line(fix)
        super().__init__(f"{self.what}; fix: {self.fix}")
