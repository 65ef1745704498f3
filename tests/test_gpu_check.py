"""The GPU agenda rehearsed on the CPU: `python -m tau_course.gpu_check --scale tiny --device cpu` run from a copy of
the repository's files in the conditions of a device machine — no .git (the commit comes in TAU_COMMIT), no virtual
environment, no `tau-course` console script, neither tau_course nor fastcore installed, the carried wheels (.whl/)
installed with `pip --target` as the device command does. Checks the records, the limits of what comes back from a
device machine, and that a stage failing on purpose leaves the other stages' records as they were."""
import json, os, re, subprocess, sys, sysconfig
from pathlib import Path

import pytest

from conftest import ROOT, tracked_copy

STAGES = ('env', 'bench', 'train', 'eval')
COMMIT = 'rehearsal0123'
HIDE = re.compile(r'^(tau_course|__editable__|fastcore|nbdev|execnb)|\.pth$', re.I)  # what the device's Python lacks


def _wheels() -> list:
    "The carried wheels, built with `make gpu-wheels` when .whl/ is empty; a skip if the package registry is unreachable."
    if not list((ROOT / '.whl').glob('*.whl')):
        r = subprocess.run(['make', '-s', 'gpu-wheels'], cwd=ROOT, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.skip(f'.whl/ is empty and `make gpu-wheels` failed (is the package registry reachable?): {r.stderr.strip()[-300:]}')
    return sorted((ROOT / '.whl').glob('*.whl'))


def _device_like_path(tmp: Path) -> tuple:
    "(wheel site, package links): the wheels installed like the device command does, and this venv's packages minus HIDE."
    site, links = tmp / 'site', tmp / 'packages'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps', '--no-compile', '--target', site,
                    *_wheels()], check=True, capture_output=True, timeout=300)
    links.mkdir()
    for d in {Path(sysconfig.get_paths()[k]) for k in ('purelib', 'platlib')}:
        for p in d.iterdir():
            if not HIDE.search(p.name) and not (links / p.name).exists(): (links / p.name).symlink_to(p)
    return site, links


def _agenda(copy: Path, env: dict, out: Path, *args, timeout: int):
    # -S: no site-packages, so no .pth file installs the venv's editable tau_course; packages come from PYTHONPATH only
    return subprocess.run([sys.executable, '-S', '-m', 'tau_course.gpu_check', '--out', out, '--work', out.parent / 'work',
                           '--device', 'cpu', '--scale', 'tiny', *args], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)


def _back_from_device(out: Path) -> list:
    "The files in `out`, asserting a device machine's limits: at most 8, each at most 16 MiB, plain names, one level."
    files = sorted(p for p in out.rglob('*'))
    assert all(p.is_file() and not p.is_symlink() and p.parent == out for p in files), files
    assert len(files) <= 8, files
    assert all(p.stat().st_size <= 16 * 2**20 and re.fullmatch(r'[A-Za-z0-9._-]+', p.name) for p in files), files
    return files


@pytest.mark.timeout(900)
def test_the_gpu_agenda_rehearsed_on_the_cpu(tmp_path):
    copy = tracked_copy(tmp_path / 'repo')
    assert not (copy / '.git').exists() and not (copy / '.venv').exists()
    site, links = _device_like_path(tmp_path)
    bins = {str(Path(sys.executable).parent)}  # no tau-course console script on the PATH
    env = dict(PATH=os.pathsep.join(p for p in os.environ.get('PATH', '').split(os.pathsep) if p not in bins),
               HOME=os.environ.get('HOME', str(tmp_path)), PYTHONPATH=os.pathsep.join(map(str, (site, copy, links))),
               TAU_COMMIT=COMMIT, MPLBACKEND='Agg')
    out = tmp_path / 'out'
    r = _agenda(copy, env, out, timeout=780)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    files = _back_from_device(out)
    assert {p.name for p in files} == {'env.json', 'bench.json', 'train.json', 'eval.json', 'predictions.png', 'summary.md'}
    assert r.stdout.rstrip().endswith((out / 'summary.md').read_text().rstrip())  # the summary is printed last

    recs = {s: json.loads((out / f'{s}.json').read_text()) for s in STAGES}
    for s, rec in recs.items():
        assert rec['status'] == 'ok', (s, rec.get('stderr_tail'))
        assert Path(rec['tau_course_file']).resolve().is_relative_to(copy.resolve()), rec['tau_course_file']  # the copy ran
        assert (rec['git_commit'], rec['commit'], rec['commit_source']) == (COMMIT, COMMIT, 'TAU_COMMIT')  # no .git: the runner's fallback
    env_rec = recs['env']
    assert env_rec['no_site'] and env_rec['fastcore_file'].startswith(str(site)), env_rec['fastcore_file']  # the carried wheel
    assert env_rec['tests']['status'] == 'ok' and env_rec['tests']['counts'].get('passed', 0) == 0, env_rec['tests']  # no CUDA: skipped
    t = recs['train']['metrics']
    assert t['killed'] and not t['recalibrated'] and t['steps'] == t['planned_steps'] and t['killed_after_step'] < t['steps'], t
    assert set(recs['bench']['metrics']) == {'fp32', 'bf16', 'bf16+channels_last', 'bf16+channels_last+compile'}

    # A stage that fails on purpose, run again alone: its record says so; the other stages' files are untouched.
    keep = {p.name: p.read_bytes() for p in files if p.name not in ('bench.json', 'summary.md')}
    r2 = _agenda(copy, env, out, '--stages', 'bench', '--fail-stage', 'bench', timeout=180)
    assert r2.returncode == 1, r2.stdout[-2000:] + r2.stderr[-2000:]
    _back_from_device(out)
    bench = json.loads((out / 'bench.json').read_text())
    assert bench['status'] == 'failed' and 'failing on purpose' in bench['stderr_tail'], bench
    assert {n: (out / n).read_bytes() for n in keep} == keep
    summary = (out / 'summary.md').read_text()
    assert '| bench | failed |' in summary and '| train | ok |' in summary and '| eval | ok |' in summary, summary
