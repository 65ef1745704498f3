"""Shared pytest fixtures: where the repository and its tools are."""
import shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name):
    "Path of a console script installed next to the running interpreter (the project's venv)."
    found = BIN / name
    return str(found) if found.exists() else shutil.which(name)


@pytest.fixture(scope='session')
def root(): return ROOT


def tracked_copy(dest: Path) -> Path:
    "Copy the files git would see (tracked + untracked-not-ignored) into `dest`, like a fresh clone of the working tree."
    out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                         cwd=ROOT, check=True, capture_output=True).stdout
    for rel in filter(None, out.decode().split('\0')):
        src = ROOT / rel
        if not src.is_file(): continue  # deleted in the working tree
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest
