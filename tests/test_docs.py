"""The README is true of the repository alone: every recipe runs from a clean checkout and
shows what it quotes, every command and option is documented (and every documented option
exists), and every file it points to is in the repository."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from tshark_dicom import cli, redact

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def recipes() -> list[str]:
    return re.findall(r"<!-- recipe -->\n```sh\n(.*?)```", README, re.S)


def test_there_are_recipes_for_each_scenario() -> None:
    text = "\n".join(recipes())
    for capture in ("reject_called_ae", "contexts_rejected", "qr_find_nomatch",
                    "qr_move_unanswered", "timing_slow_scp", "mid_association",
                    "fixtures/captures -o", "abort_after_rejection", "scp_down",
                    "qr_worklist_wrong_station", "qr_get_unconvertible",
                    "commit_new_association", "commit_unanswered",
                    "mpps_open_and_discontinued", "mpps_images_missing",
                    "store_encoding_mismatch", "store_pixel_data_mismatch",
                    "store_native_pixel_data", "store_sop_mismatch", "user_identity",
                    "store_copies_compared", "twopoint_scu_side"):
        assert capture in text


@pytest.mark.parametrize("recipe", recipes(), ids=lambda r: r.split("\n")[0][:60])
def test_recipe_runs_and_shows_what_it_says(recipe: str, tmp_path: Path) -> None:
    """Run in an empty folder holding only the repository's fixtures (as a clean clone
    has them), with this checkout's package; each `# shows:` line must be in the output of
    the command before it."""
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    output = ""
    ran = 0
    for line in recipe.splitlines():
        if line.startswith("# shows: "):
            assert line[len("# shows: "):] in output, (line, output[-3000:])
            continue
        argv = shlex.split(line)
        if argv[0] == "tshark-dicom":
            argv = [sys.executable, "-m", "tshark_dicom", *argv[1:]]
        elif argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        elif argv[0] == "tshark":  # Wireshark's own, where a recipe goes back to it
            argv = [shutil.which("tshark") or "tshark", *argv[1:]]
        else:
            pytest.fail(f"unknown command in a recipe: {line}")
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (line, done.stderr[-2000:])
        output = done.stdout
        ran += 1
    assert ran


def _options(command: str) -> dict[str, object]:
    group = typer.main.get_command(cli.app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    return {max(p.opts, key=len): p for p in cmd.params if p.param_type_name == "option"}


def _documented(command: str) -> set[str]:
    rows = README.split(f"| {command} option | meaning |", 1)[1].split("\n\n", 1)[0]
    return {m for cell in re.findall(r"^\| (.*?) \|", rows, re.M)
            for m in re.findall(r"--[a-z][a-z-]*", cell)}


@pytest.mark.parametrize("command", ["analyze", "diagnose", "compare", "watch"])
def test_every_option_is_documented_and_every_documented_option_exists(command: str) -> None:
    options = _options(command)
    assert set(options) - {"--help"} == _documented(command)
    for name, param in options.items():
        assert getattr(param, "help", None), name
        assert f"tshark-dicom {command}" in README


@pytest.mark.parametrize("argv", [["-h"], ["analyze", "-h"], ["diagnose", "-h"],
                                  ["compare", "-h"], ["watch", "-h"]])
def test_help_in_plain_words(argv: list[str]) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0 and result.output.startswith("Usage:")
    usage = result.output.splitlines()[0]
    assert "{" not in usage and "<" not in result.output  # no <list[Path]>, <str>, <int>
    for command in ("analyze", "diagnose", "compare", "watch"):
        assert command in typer.main.get_command(cli.app).commands  # type: ignore[attr-defined]


def test_version_is_instant() -> None:
    """`--version` does not load the analysis (pandas, pyarrow, pydicom)."""
    # the app, not main(): main() ends the process at once (no teardown)
    code = ("import sys; from tshark_dicom.cli import app; sys.argv = ['tshark-dicom', "
            "'--version']\ntry:\n    app()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pandas', 'pyarrow', 'pydicom', 'pynetdicom') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.splitlines() == [f"tshark-dicom {cli.__version__}", "[]"]


def test_redact_key_variable_agrees() -> None:
    assert cli.KEY_ENV == redact.KEY_ENV


def test_files_the_readme_points_to_are_in_the_repository() -> None:
    paths = set(re.findall(r"\]\(((?:docs|notebooks|fixtures)/[^)\s]+)\)", README))
    paths |= set(re.findall(r"`((?:docs|notebooks|tshark_dicom|benchmarks|fixtures|tests)/"
                            r"[\w./-]+\.(?:py|ipynb|png|md|json))`", README))
    assert paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []
    assert "../" not in README  # nothing outside the repository
