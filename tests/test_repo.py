"""The repository is what a fresh clone gets: notebooks and modules in sync, notebooks clean, a wheel that imports."""
import filecmp, os, subprocess, sys, zipfile
from pathlib import Path

import pytest

from conftest import ROOT, tool, tracked_copy


def _snapshot(d: Path):
    return {p.relative_to(d): p.read_bytes() for p in d.rglob('*') if p.is_file() and '.git' not in p.parts}


def test_export_and_clean_change_nothing(tmp_path):
    "`nbdev_export` then `nbdev_clean` on a copy of the tree must leave every file as it is (CI's sync check)."
    work = tracked_copy(tmp_path / 'repo')
    before = _snapshot(work)
    for cmd in ('nbdev_export', 'nbdev_clean'):
        subprocess.run([tool(cmd)], cwd=work, check=True, capture_output=True)
    after = _snapshot(work)
    changed = sorted(str(k) for k in set(before) | set(after) if before.get(k) != after.get(k)
                     and '__pycache__' not in str(k))
    assert not changed, f'run `make export` (nbdev_export && nbdev_clean) and commit: changed {changed}'


def test_wheel_installs_and_imports_without_notebooks_or_data(tmp_path):
    "A built wheel holds the package only, and `import tau_course` works from anywhere without notebooks or data."
    work = tracked_copy(tmp_path / 'repo')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '.', '-w', 'dist'],
                   cwd=work, check=True, capture_output=True)
    wheel, = (work / 'dist').glob('tau_course-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith('.ipynb') or n.startswith(('data/', 'nbs/', 'tests/'))], names
    site = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(site), str(wheel)],
                   check=True, capture_output=True)
    mods = sorted(p.stem for p in (site / 'tau_course').glob('*.py') if not p.stem.startswith('_'))
    code = ('import importlib, tau_course; assert tau_course.__file__.startswith(%r), tau_course.__file__; '
            '[importlib.import_module("tau_course." + m) for m in %r]; print(tau_course.__version__)') % (str(site), mods)
    env = {k: v for k, v in os.environ.items() if k != 'TAU_COURSE_DATA'} | {'PYTHONPATH': str(site), 'HOME': str(tmp_path)}
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == __import__('tau_course').__version__
