"""Whether the process behind a ``host:pid:token`` owner (an answer-cache claimant) is gone."""
from __future__ import annotations

import os
import socket


def owner_is_gone(owner: str) -> bool:
    """True for a claimant of this host whose process is gone (killed, crashed): its claims need
    not wait out the lease. Another host's claimant, or a pid that is alive (or reused), waits."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by another user
        return False
    return False
