"""Writing output to /dev/null or a FIFO never replaces the special file."""

import os
import stat
import threading
from pathlib import Path

from immichcheck.history.store import atomic_write_text


def test_output_to_a_fifo_writes_through_it(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    atomic_write_text(fifo, "hello\n")
    reader.join(timeout=5)
    assert received == ["hello\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_output_to_dev_null_keeps_the_device(tmp_path):
    atomic_write_text(Path("/dev/null"), "discarded\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
