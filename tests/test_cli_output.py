"""`--output FILE` goes through one writer (options.write_output) for every command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli


@pytest.mark.parametrize(
    "args",
    [
        ["manifests", "list"],
        ["manifests", "show", "immich-redis"],
        ["manifests", "expected", "--format", "yaml"],
    ],
    ids=["list", "show", "expected"],
)
def test_output_file_holds_the_bytes_standard_output_shows(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, shown, _err = run_cli(args, capsys)
    assert code == 0 and shown.endswith("\n")
    target = tmp_path / "not-yet-there" / "out.txt"
    code, out, err = run_cli([*args, "--output", str(target)], capsys)
    assert (code, out, err) == (0, "", "")
    assert target.read_text(encoding="utf-8") == shown
    # Written atomically: the folder is created and no temporary file is left beside it.
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_output_under_a_plain_file_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a folder\n", encoding="utf-8")
    target = plain / "out.txt"
    code, out, err = run_cli(["manifests", "list", "--output", str(target)], capsys)
    assert (code, out) == (3, "")
    assert err.splitlines() == [f"immichcheck: error: cannot write {target}: Not a directory"]
