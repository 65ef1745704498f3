"""The two README commands stay true: `make demo` runs a command that exists, and it renders Moving MNIST."""
import os, shlex, subprocess
from pathlib import Path

from conftest import ROOT
from tau_course.runner import shipped_model


def demo_exe()->str:
    "The tau-course executable that `make demo` runs (read from `make -n demo`, so the test follows the Makefile)."
    lines = subprocess.run(['make', '-n', '-s', 'demo'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    cmd = shlex.split(lines[-1])
    assert Path(cmd[0]).name == 'tau-course' and cmd[1] == 'demo', lines
    return str(ROOT / cmd[0])


def test_make_demo_runs_the_cli_demo(tmp_path):
    "`make -n demo` names the tau-course demo; its render step (no training) writes the GIF and the PNG."
    out = subprocess.run([demo_exe(), 'demo', '--no-train', '--out', str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / 'moving_mnist.gif').stat().st_size > 0 and (tmp_path / 'moving_mnist.png').stat().st_size > 0


def test_demo_forecast_part(tmp_path):
    "The demo's first part: the shipped showcase model's forecast inside the checkout, a one-line notice outside it."
    exe = demo_exe()
    env = {**os.environ, 'TAU_COURSE_DATA': str(ROOT / 'data')}  # outside the checkout, as after a wheel install with data
    outside = subprocess.run([exe, 'demo', '--no-train', '--out', 'o'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert outside.returncode == 0, outside.stderr
    assert [l for l in outside.stdout.splitlines() if 'skipping the forecast' in l], outside.stdout
    assert not (tmp_path / 'o' / 'forecast.png').exists()
    inside = subprocess.run([exe, 'demo', '--no-train', '--out', str(tmp_path / 'i')], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert inside.returncode == 0, inside.stderr
    shipped = shipped_model(start=ROOT) is not None  # the demo's own lookup, from the checkout's root
    assert (tmp_path / 'i' / 'forecast.png').is_file() == shipped, inside.stdout
    assert ('skipping the forecast' in inside.stdout) != shipped, inside.stdout
