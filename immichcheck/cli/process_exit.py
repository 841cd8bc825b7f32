"""Ending the immichcheck process quickly once its work is done and its output is out.

At exit CPython frees every module and object it loaded. With the libraries verify needs
(kr8s, redis, asyncpg, httpx) that teardown costs 0.1-0.2 s on a 2-core machine, a fifth of
a whole verify run, for nothing: the operating system reclaims the memory anyway. mypy ends
its process the same way (`mypy.util.hard_exit`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """Flush output, run the atexit handlers, then end the process without the teardown.

    Falls back to a normal exit while another non-daemon thread is alive: the interpreter's
    shutdown would wait for it, and nothing it is doing may be cut short. (Daemon threads
    are stopped at exit either way.)
    """
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(thread.is_alive() and not thread.daemon for thread in others):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (`| head`) has nothing left to be told.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    # Registered cleanups (logging, temporary folders, multiprocessing) still run.
    atexit._run_exitfuncs()
    os._exit(code)
