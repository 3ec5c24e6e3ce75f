"""Watching the notebook kernel: which cell runs, and how the kernel process ended if it died.

papermill only says ``DeadKernelError: Kernel died``. The kernel manager below remembers the
kernel process's exit status the moment nbclient notices it is gone (a negative status is the
signal that killed it), and ``CellTracker`` remembers the cell that was started last, so a dead
kernel can be reported as "which notebook, which cell, which signal, what to do".
"""
from __future__ import annotations

import signal

from jupyter_client.manager import AsyncKernelManager

ADVICE = {"SIGILL": "an illegal instruction: llama.cpp was built for instructions this CPU will not execute; "
                    "rebuild it with `make engine` (portable flags)",
          "SIGKILL": "killed from outside, often by the out-of-memory killer: use fewer threads or personas",
          "SIGSEGV": "a crash in native code"}


class WatchedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` that keeps the kernel's exit status once it has exited."""

    exit_status: int | None = None

    async def _async_is_alive(self) -> bool:
        if self.has_kernel:
            status = await self.provisioner.poll()
            if status is not None:
                self.exit_status = status
        return await super()._async_is_alive()


class CellTracker:
    """nbclient ``on_cell_start`` hook: the index and first source line of the cell last started."""

    def __init__(self):
        self.index: int | None = None
        self.first_line = ""

    def __call__(self, cell, cell_index):
        self.index = int(cell_index)
        self.first_line = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")


def signal_name(status: int | None) -> str | None:
    """``SIGILL`` for exit status -4 (killed by signal 4); None if not killed by a signal."""
    if status is None or status >= 0:
        return None
    try:
        return signal.Signals(-status).name
    except ValueError:
        return f"signal {-status}"


def describe_death(notebook: str, cell: CellTracker, status: int | None) -> str:
    """One line: the notebook, the cell that was running, the signal if known, what to do."""
    where = (f"while running the cell starting `{cell.first_line[:60]}` (cell index {cell.index} of the executed "
             f"notebook)" if cell.index is not None else "before any cell ran")
    sig = signal_name(status)
    how = (f"killed by {sig}" + (f", {ADVICE[sig]}" if sig in ADVICE else "")) if sig else \
        (f"exit status {status}" if status is not None else "no exit status known")
    return (f"the kernel running {notebook} died {where}: {how}; "
            f"run `vpersona doctor` to check the engine before rerunning")
