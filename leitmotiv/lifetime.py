"""Worker processes end with the process that started them.

A killed ``add-directory`` (``kill -9``, the out-of-memory killer) must not leave its
workers behind.  They would stay for ever: a worker waits on its task queue, whose
write end every worker holds too, and under the ``forkserver`` start method it is the
forkserver's child, not the main process's, so a parent-death signal
(``PR_SET_PDEATHSIG``) would fire only when the forkserver dies, which itself waits
for its children to close the pipe it watches.  So each worker watches the main
process itself, from a thread: once that process has ended the worker exits, after
which the forkserver and the resource tracker see their pipes close and end as well.
"""

from __future__ import annotations

import os
import select
import threading
import time

#: Exit status of a worker that ended because the process it served was gone.
ORPHAN_EXIT_STATUS = 1

#: Seconds between checks where the system offers no process descriptor to wait on.
POLL_SECONDS = 1.0


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _watch(pid: int, descriptor: int | None) -> None:
    if descriptor is not None:
        select.select([descriptor], [], [])  # readable once the process has ended
    else:
        while _exists(pid):
            time.sleep(POLL_SECONDS)
    os._exit(ORPHAN_EXIT_STATUS)


def end_with(pid: int) -> None:
    """End this process as soon as process ``pid`` has ended.

    Parameters
    ----------
    pid : int
        The process this one works for (the main leitmotiv process).

    Notes
    -----
    On Linux 5.3 and later the watch is a process descriptor (``pidfd_open``): no
    polling, and no confusion with a later process that reuses the id.  Elsewhere the
    id is checked every :data:`POLL_SECONDS`.  The process exits with ``os._exit``:
    nothing is left for it to finish, since its results had nowhere to go.
    """
    try:
        descriptor: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(ORPHAN_EXIT_STATUS)
    except (AttributeError, OSError):
        descriptor = None
    threading.Thread(
        target=_watch, args=(pid, descriptor), name="end-with-parent", daemon=True
    ).start()
