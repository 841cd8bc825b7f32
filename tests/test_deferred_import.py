"""Deferred imports: nothing runs until an attribute is read, then the real module, once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from immichcheck.deferred_import import defer

assert defer("heavy", "pkg.sub", "not_installed_anywhere", "os") == ["heavy", "pkg.sub"]
import heavy  # the statement kr8s runs at its top: still nothing executed
from pkg import sub
import pkg.sub
assert open(sys.argv[2]).read() == ""  # neither module has run
assert heavy.VALUE == 42 and heavy.twice(2) == 4  # first read: the real import, once
assert sub.NAME == "sub" and pkg.sub.NAME == "sub"
assert sys.modules["heavy"].VALUE == 42 and type(sys.modules["heavy"]).__name__ == "module"
assert open(sys.argv[2]).read() == "heavy\\nsub\\n", open(sys.argv[2]).read()
try:
    heavy.missing
except AttributeError:
    pass
else:
    raise AssertionError("a missing attribute must still be an AttributeError")
print("ok")
"""


def test_deferred_modules_run_on_first_attribute_read_only(tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    log.write_text("")
    (tmp_path / "heavy.py").write_text(
        textwrap.dedent(f"""
        open({str(log)!r}, "a").write("heavy\\n")
        VALUE = 42
        def twice(x):
            return 2 * x
    """)
    )
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub.py").write_text(
        f'open({str(log)!r}, "a").write("sub\\n")\nNAME = "sub"\n'
    )
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(log)],
        capture_output=True, text=True, timeout=60, check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert completed.stdout.strip() == "ok", completed.stderr


def test_kr8s_imports_without_the_deferred_modules_and_still_works() -> None:
    """What the snapshot child relies on: kr8s imports with its unused modules deferred,
    and a deferred module kr8s does use later (port-forward's httpx_ws) still loads."""
    script = """
import sys
from immichcheck.deferred_import import defer
from immichcheck.probes.prefetch import KR8S_UNUSED_HERE
defer(*KR8S_UNUSED_HERE)
import kr8s.asyncio
import kr8s._api
loaded = [n for n in KR8S_UNUSED_HERE if type(sys.modules[n]).__name__ == "module"]
assert loaded == [], loaded
assert sys.modules["kr8s._api"].httpx_ws.WebSocketDisconnect.__name__ == "WebSocketDisconnect"
assert type(sys.modules["httpx_ws"]).__name__ == "module"
print("ok")
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert completed.stdout.strip() == "ok", completed.stderr
