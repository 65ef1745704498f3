"""Every notebook runs under nbdev's test runner with the project's skip flags: `pytest` is the one entry point."""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as _run_nb  # aliased: pytest would collect `test_nb` as a test

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / 'nbs').glob('[0-9]*.ipynb'))


def test_flags_are_whitespace_separated():
    "nbdev 2 splits tst_flags on whitespace; a '|' separator would silently skip nothing."
    flags = get_config(path=ROOT).tst_flags.split()
    assert set(flags) == {'notest', 'slow', 'gpu'}, flags


def test_every_chapter_is_found():
    assert len(NOTEBOOKS) >= 2, NOTEBOOKS


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb: Path, monkeypatch):
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    skip = get_config(path=ROOT).tst_flags.split()
    ok, secs = _run_nb(nb, skip_flags=skip, basepath=ROOT)
    assert ok, f'{nb.name} failed under nbdev_test (see the traceback above)'
