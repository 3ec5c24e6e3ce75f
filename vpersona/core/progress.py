"""Progress bars that suit where they are shown.

On a terminal, a normal tqdm bar. Anywhere else (a CI log, ``make demo > log``, a file) a bar
redrawn with ``\\r`` ten times a second becomes thousands of lines, so there the bar is printed as
a plain line at most every ``LOG_INTERVAL`` seconds, plus one at the end. Inside a notebook kernel
stderr is never a terminal, so the command that starts the kernel says what the console is, in
the ``VPERSONA_PROGRESS`` environment variable (``tty`` or ``log``).
"""
from __future__ import annotations

import os
import sys
import warnings

ENV = "VPERSONA_PROGRESS"
LOG_INTERVAL = 30.0  # seconds between lines when stderr is not a terminal


def console_kind(stream=None) -> str:
    """``tty`` or ``log``: ``VPERSONA_PROGRESS`` if set, else whether ``stream`` (stderr) is a terminal."""
    kind = os.environ.get(ENV)
    if kind in ("tty", "log"):
        return kind
    stream = sys.stderr if stream is None else stream
    return "tty" if getattr(stream, "isatty", lambda: False)() else "log"


class _Lines:
    """A file for tqdm that turns each ``\\r`` redraw into one line (and drops empty redraws)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(total: int, desc: str, unit: str = "it", disable: bool = False, stream=None):
    """A tqdm bar for ``total`` steps on ``stream`` (default stderr), in the console's style."""
    with warnings.catch_warnings():  # tqdm.auto warns when ipywidgets is absent, then uses text bars
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    stream = sys.stderr if stream is None else stream
    if console_kind(stream) == "tty":
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=stream)
    from tqdm import tqdm as plain  # no notebook widget for a log
    return plain(total=total, desc=desc, unit=unit, disable=disable, file=_Lines(stream), ascii=True,
                 mininterval=LOG_INTERVAL, maxinterval=LOG_INTERVAL, dynamic_ncols=False, ncols=80)
