"""The CLI ends its process without the interpreter's teardown (process_exit), losing nothing.

Each case runs a real interpreter, since what is under test is how a process ends.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

IMMICHCHECK = str(Path(sys.executable).with_name("immichcheck"))


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_output_atexit_handlers_and_exit_code_survive() -> None:
    done = python(
        "import atexit, sys\n"
        "from immichcheck.cli.process_exit import exit_process\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "sys.stdout.write('x' * 1_000_000)\n"  # more than any pipe or stdio buffer holds
        "sys.stderr.write('to stderr')\n"
        "exit_process(3)\n"
    )
    assert done.returncode == 3
    assert done.stdout == "x" * 1_000_000 + "atexit ran\n"
    assert done.stderr == "to stderr"


def test_a_running_worker_thread_is_waited_for(tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    done = python(
        "import threading, time\n"
        "from pathlib import Path\n"
        "from immichcheck.cli.process_exit import exit_process\n"
        "def work():\n"
        "    time.sleep(0.3)\n"
        f"    Path({str(marker)!r}).write_text('done')\n"
        "threading.Thread(target=work).start()\n"
        "exit_process(1)\n"
    )
    assert done.returncode == 1
    assert marker.read_text() == "done"


def test_cli_output_to_a_closed_pipe_is_quiet() -> None:
    # `immichcheck verify --list | head -0`: the reader is gone before anything is written
    # (closed first, so the write always meets a closed pipe, whatever the timing).
    listing = subprocess.Popen(
        [IMMICHCHECK, "verify", "--list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert listing.stdout is not None and listing.stderr is not None
    listing.stdout.close()
    errors = listing.stderr.read().decode()
    # click ends a command whose stdout pipe closed (EPIPE) with exit code 1, and says nothing.
    assert listing.wait(timeout=60) == 1
    assert "Traceback" not in errors and "Exception ignored" not in errors


def test_cli_exit_codes_pass_through() -> None:
    version = subprocess.run(
        [IMMICHCHECK, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert version.returncode == 0 and version.stdout.startswith("immichcheck")
    bad_flag = subprocess.run(
        [IMMICHCHECK, "verify", "--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad_flag.returncode == 3
    assert bad_flag.stderr.startswith("immichcheck: error:")
