"""The two README commands stay true: `make demo` runs a command that exists, and it renders Moving MNIST."""
import shlex, subprocess
from pathlib import Path

from conftest import ROOT


def test_make_demo_runs_the_cli_demo(tmp_path):
    "`make -n demo` names the tau-course demo; its render step (no training) writes the GIF and the PNG."
    lines = subprocess.run(['make', '-n', '-s', 'demo'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    cmd = shlex.split(lines[-1])
    assert Path(cmd[0]).name == 'tau-course' and cmd[1] == 'demo', lines
    out = subprocess.run([str(ROOT / cmd[0]), 'demo', '--no-train', '--out', str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / 'moving_mnist.gif').stat().st_size > 0 and (tmp_path / 'moving_mnist.png').stat().st_size > 0
