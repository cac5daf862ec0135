"""Build hook: pyproject.toml holds the metadata; this file only decides what is compiled.

The per-packet modules (`COMPILED`) are compiled with mypyc (as mypy and black ship
themselves) when mypy is importable and a C compiler works; otherwise, or with
``TSHARK_DICOM_PURE=1`` set at build time, the package is built pure Python. Either way
the build writes ``tshark_dicom/_compiled.py`` (not in git): the SHA-256 of each source it
compiled, which ``tshark_dicom/__init__.py`` checks on import so that a compiled module
whose source has changed since the build is never used (see README, "Compiled modules").
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import traceback
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
PACKAGE = "tshark_dicom"
#: The modules every packet passes through, compiled when a compiler is present (never
#: interrupts.py: a call into it is what delivers a Ctrl-C to compiled code).
COMPILED = ("packets", "streams", "tcpevidence", "pdu", "messages", "demux")
MANIFEST = HERE / PACKAGE / "_compiled.py"


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(hashes: dict[str, str], reason: str) -> None:
    lines = [
        '"""Written by setup.py at build time (not in git): the modules this build compiled',
        'with mypyc and the SHA-256 of the source each was compiled from; or why none was."""',
        "",
        "MODULES = {",
        *(f'    "{name}": "{digest}",' for name, digest in sorted(hashes.items())),
        "}",
        f"REASON = {json.dumps(reason)}",
        "",
    ]
    text = "\n".join(lines)
    if not MANIFEST.exists() or MANIFEST.read_text() != text:
        MANIFEST.write_text(text)


def pure(reason: str) -> list[object]:
    """A pure-Python build: no extension modules, and none left from an earlier build in
    the source tree (an editable install imports from there)."""
    for name in (*COMPILED, "_native__mypyc"):
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            (HERE / PACKAGE / f"{name}{suffix}").unlink(missing_ok=True)
    write_manifest({}, reason)
    return []


def compiler_problem() -> str | None:
    """Why C extensions cannot be built here (None: a compiler builds against Python.h)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    include = sysconfig.get_paths()["include"]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "probe.c")
        src.write_text("#include <Python.h>\nint probe(void) { return 0; }\n")
        argv = [*shlex.split(cc), "-I", include, "-c", str(src), "-o", str(Path(tmp, "p.o"))]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"no C compiler ({exc})"
        if done.returncode:
            return f"the C compiler cannot build against Python.h ({argv[0]})"
    return None


#: Commands that build extension modules; the others (egg_info, dist_info, sdist: pip runs
#: them first, to learn what to install) only describe the project: nothing to compile.
BUILDING = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop",
            "bdist", "bdist_egg"}


def ext_modules() -> list[object]:
    if not BUILDING.intersection(sys.argv[1:]):
        return []
    if os.environ.get("TSHARK_DICOM_PURE", "") not in ("", "0"):
        return pure("TSHARK_DICOM_PURE set at build time")
    try:
        from mypyc.build import mypycify
    except ImportError:
        return pure("mypy (mypyc) not importable at build time")
    problem = compiler_problem()
    if problem is not None:
        return pure(problem)
    paths = [f"{PACKAGE}/{name}.py" for name in COMPILED]
    hashes = {name: source_hash(HERE / PACKAGE / f"{name}.py") for name in COMPILED}
    write_manifest(hashes, "")
    try:
        # Options beyond pyproject's [tool.mypy]: the build environment may lack the
        # optional stubs of modules that are only imported, never compiled.
        return list(mypycify(["--follow-imports=silent", "--ignore-missing-imports", *paths],
                             opt_level="3", group_name=f"{PACKAGE}._native"))
    except BaseException:  # mypyc exits on errors; a pure build still works
        traceback.print_exc()
        print("tshark-dicom: mypyc failed, building pure Python", file=sys.stderr)
        return pure("mypyc failed at build time")

setup(ext_modules=ext_modules())
