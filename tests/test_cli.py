"""The `tau-course` console script end to end, as a user runs it: train 2 short epochs -> eval -> predict -> export."""
import json, os, subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import tool
from tau_course.runner import RESULT_KEYS, resolve_amp


def tau_course(*args, cwd=None):
    return subprocess.run([tool('tau-course'), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A tiny CPU training run shared by the tests of this module."
    d = tmp_path_factory.mktemp('cli')
    out = tau_course('train', '--config', 'mmnist_cpu_tiny', '--epochs', 2, '--length', 32, '--val-length', 8,
                     '--batch-size', 8, '--out', d / 'run', '--results', d / 'results', '--name', 'tiny', '--quiet')
    assert out.returncode == 0, out.stderr
    return d


def test_train_writes_checkpoints_and_a_result_record(run):
    for ckpt in ('last', 'best'):
        assert {'model.safetensors', 'config.json'} <= {p.name for p in (run / 'run' / ckpt).iterdir()}
    rec = json.loads((run / 'results' / 'tiny.json').read_text())
    assert set(RESULT_KEYS) <= set(rec)
    assert rec['valid_set'] == 'heldout[:8]/pool2' and rec['test_set'] is None  # validation never on a test set
    assert rec['config']['epochs'] == 2 and rec['seed'] == 42 and rec['machine']['precision'] == (resolve_amp('auto') or 'fp32')  # --amp auto: bf16 where native
    assert {'mse', 'mae', 'mse_px', 'mae_px', 'psnr', 'ssim'} <= set(rec['metrics'])
    assert abs(rec['metrics']['mse'] - rec['metrics']['mse_px'] * 32 * 32) <= 1e-6 * rec['metrics']['mse']
    assert [h['epoch'] for h in rec['history']] == [0, 1] and rec['history'][-1]['mse'] == rec['metrics']['mse']


def test_max_steps_stops_with_a_validation_and_a_checkpoint(tmp_path):
    "A --max-steps stop mid-epoch ends like any run: metrics printed and recorded, `last` of that step, a record of it."
    out = tau_course('train', '--config', 'mmnist_cpu_tiny', '--max-steps', 2, '--epochs', 1, '--length', 32,
                     '--val-length', 16, '--out', tmp_path / 'x', '--results', tmp_path / 'results', '--quiet')
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout.strip().splitlines()[-1])
    rec = json.loads((tmp_path / 'results' / 'x.json').read_text())
    assert printed and printed == rec['metrics'] and 'mse' in printed
    assert (rec['steps_run'], rec['epochs'], rec['stopped_by'], rec['max_steps']) == (2, 1, 'max_steps=2', 2)
    assert Path(rec['checkpoint']).is_dir() and (Path(rec['checkpoint']) / 'model.safetensors').is_file()
    assert json.loads((tmp_path / 'x' / 'last' / 'state.json').read_text())['step'] == 2
    bad = tau_course('train', '--config', 'mmnist_cpu_tiny', '--target-mse', 'nan', '--out', tmp_path / 'y')
    assert bad.returncode == 2 and '--target-mse must be a finite number > 0' in bad.stderr


def test_train_refuses_to_overwrite_a_run(run):
    out = tau_course('train', '--config', 'mmnist_cpu_tiny', '--epochs', 1, '--out', run / 'run', '--results', run / 'results')
    assert out.returncode == 2 and 'already holds a run' in out.stderr


def test_eval_predict_export(run):
    ckpt = run / 'run' / 'best'
    ev = tau_course('eval', '--ckpt', ckpt, '--n', 8, '--results', run / 'results', '--name', 'ev')
    assert ev.returncode == 0, ev.stderr
    rec = json.loads((run / 'results' / 'ev.json').read_text())
    assert rec['test_set'] == 'standin[:8]/pool2' and rec['metrics']['mse'] > 0
    assert len(rec['metrics_per_frame']['mse']) == rec['n_future'] == 10
    ev = tau_course('eval', '--ckpt', ckpt, '--n', 4, '--n-future', 30, '--digits', 3, '--results', run / 'results', '--name', 'ev30')
    assert ev.returncode == 0, ev.stderr
    rec = json.loads((run / 'results' / 'ev30.json').read_text())
    assert rec['test_set'] == 'standin-64px-3digits-10to30[:4]/pool2' and len(rec['metrics_per_frame']['ssim']) == 30
    ctx = (np.random.default_rng(0).random((2, 10, 1, 32, 32)) * 255).astype(np.uint8)
    np.save(run / 'ctx.npy', ctx)
    pr = tau_course('predict', '--ckpt', ckpt, '--input', run / 'ctx.npy', '--n-future', 20, '--out', run / 'pred.npy', '--gif', run / 'pred.gif')
    assert pr.returncode == 0, pr.stderr
    assert np.load(run / 'pred.npy').shape == (2, 20, 1, 32, 32) and (run / 'pred.gif').stat().st_size > 0
    ex = tau_course('export', '--ckpt', ckpt, '--onnx', run / 'tau.onnx')
    assert ex.returncode == 0, ex.stderr
    assert (run / 'tau.onnx').stat().st_size > 0 and not list(run.glob('*.part.onnx'))


def test_bad_input_exit_code_2(run, tmp_path):
    np.save(tmp_path / 'bad.npy', np.zeros((3, 1, 32, 32), np.float32))
    out = tau_course('predict', '--ckpt', run / 'run' / 'best', '--input', tmp_path / 'bad.npy', '--out', tmp_path / 'p.npy')
    assert out.returncode == 2 and 'expected shape' in out.stderr and not (tmp_path / 'p.npy').exists()
    assert tau_course('eval', '--ckpt', tmp_path / 'nothing').returncode == 2


SLOW = {'kitticaltech', 'human'}  # a full-size step takes minutes and GBs on 2 cores


@pytest.mark.parametrize('name', ['taxibj', 'kth', 'kitticaltech', 'human'])
def test_other_benchmarks_prepare_and_take_one_step(name, tmp_path):
    "`data prepare` on format-true fixture files, then one optimiser step of the full reference recipe at batch size 1."
    if name in SLOW and not os.environ.get('TAU_SLOW'): pytest.skip('slow: set TAU_SLOW=1 (make test-slow)')
    import importlib
    src = importlib.import_module(f'tau_course.datasets.{name}').make_fixture(tmp_path / 'download')
    prep = tau_course('data', 'prepare', name, '--src', src, '--root', tmp_path / 'data')
    assert prep.returncode == 0, prep.stderr
    out = tau_course('train', '--config', name, '--batch-size', 1, '--max-steps', 1, '--data-root', tmp_path / 'data',
                     '--out', tmp_path / 'run', '--results', tmp_path / 'results', '--quiet')
    assert out.returncode == 0, out.stderr
    rec = json.loads((tmp_path / 'results' / 'run.json').read_text())
    assert rec['max_steps'] == 1 and rec['config']['model'] == name


def test_unprepared_data_is_a_one_line_error(tmp_path):
    out = tau_course('train', '--config', 'taxibj', '--data-root', tmp_path, '--out', tmp_path / 'run', '--results', tmp_path)
    assert out.returncode == 2 and 'data prepare taxibj' in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_bench_isolated_rows_and_data_rate(tmp_path):
    "Each --isolate row runs in its own child (own peak memory, own allocator setting); speed-ups over the reference row; --data adds the generation rate; bad input exits 2."
    out = tau_course('bench', '--recipes', 'mmnist_cpu_tiny', '--modes', 'reference', 'eager', '--batch-size', 1, '--retain', 'off', 'on',
                     '--steps', 1, '--warmup', 0, '--isolate', '--data', '--results', tmp_path, '--name', 'perf')
    assert out.returncode == 0, out.stderr
    rec = json.loads((tmp_path / 'perf.json').read_text())
    assert set(RESULT_KEYS) <= set(rec) and rec['seed'] == 0
    assert [(r['mode'], r['retain'], r['round']) for r in rec['rows']] == [('reference', False, 0), ('reference', True, 0), ('eager', False, 0), ('eager', True, 0)]
    assert all(r['peak_rss_mb'] > 50 and r['max_abs_diff'] <= 1e-5 for r in rec['rows'])
    assert [(s['mode'], s['retain'], s['train_speedup'] > 0) for s in rec['speedups']] == [('reference', False, True), ('reference', True, True), ('eager', False, True), ('eager', True, True)]
    assert rec['speedups'][0]['train_speedup'] == 1.0
    assert rec['metrics']['mmnist_cpu_tiny']['mode'] == 'reference' and rec['data_seq_s'] > 0 and rec['gemm_gflops'] > 0
    same = tau_course('bench', '--recipes', 'mmnist_cpu_tiny', '--retain', 'off', 'on', '--results', tmp_path)
    assert same.returncode == 2 and 'needs --isolate' in same.stderr
    bad = tau_course('bench', '--recipes', 'mmnist_cpu_tiny', '--modes', 'fp8', '--results', tmp_path)
    assert bad.returncode == 2 and 'unknown mode' in bad.stderr


def test_bench_takes_a_device_and_refuses_a_missing_one(tmp_path):
    "`bench --device` like train/eval/predict/demo: a device this machine lacks is one line and exit 2, before any row runs."
    import torch
    missing = 'cuda:7' if torch.cuda.device_count() < 8 else 'cuda:99'
    out = tau_course('bench', '--recipes', 'mmnist_cpu_tiny', '--device', missing, '--results', tmp_path / 'res')
    _one_line_error(out, f"tau-course bench: error: device '{missing}'")
    assert not (tmp_path / 'res').exists() and 'recipe' not in out.stdout  # no row was measured
    ok = tau_course('bench', '--recipes', 'mmnist_cpu_tiny', '--modes', 'fp32', 'bf16+channels_last', '--batch-size', 1,
                    '--steps', 1, '--warmup', 0, '--device', 'cpu', '--results', tmp_path / 'res', '--name', 'cpu')
    assert ok.returncode == 0 and ok.stdout.startswith('tau-course bench: device cpu'), ok.stderr[-2000:]
    rec = json.loads((tmp_path / 'res' / 'cpu.json').read_text())
    assert rec['config']['device'] == 'cpu' and {r['device'] for r in rec['rows']} == {'cpu'}
    assert [s['mode'] for s in rec['speedups']] == ['fp32', 'bf16+channels_last'] and rec['speedups'][0]['train_speedup'] == 1.0


def _one_line_error(out, *words):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and all(w in lines[0] for w in words), (out.returncode, out.stderr[-2000:])


def _snapshot(d: Path): return {p: p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file()}


def test_a_flipped_byte_never_loads(run, tmp_path):
    "A checkpoint whose weights changed after they were written is refused by eval and by --resume, and nothing is written."
    import shutil
    bad = tmp_path / 'run'; shutil.copytree(run / 'run', bad)
    for ckpt in ('best', 'last'):
        f = bad / ckpt / 'model.safetensors'; raw = bytearray(f.read_bytes()); raw[len(raw) // 2] ^= 0x01; f.write_bytes(bytes(raw))
    before = _snapshot(bad)
    _one_line_error(tau_course('eval', '--ckpt', bad / 'best', '--n', 2, '--results', tmp_path / 'res'), 'model.safetensors', 'SHA-256 mismatch')
    _one_line_error(tau_course('train', '--config', 'mmnist_cpu_tiny', '--epochs', 2, '--length', 32, '--val-length', 8,
                               '--batch-size', 8, '--out', bad, '--results', tmp_path / 'res', '--resume', '--quiet'),
                    str(bad / 'last' / 'model.safetensors'), 'SHA-256 mismatch')
    assert _snapshot(bad) == before and not (tmp_path / 'res').exists()


def test_resume_from_another_config_lists_the_differences(run, tmp_path):
    before = _snapshot(run / 'run')
    out = tau_course('train', '--config', 'mmnist_cpu_tiny', '--epochs', 3, '--lr', 0.01, '--model-opt', 'hid_T=32',
                     '--length', 32, '--val-length', 8, '--batch-size', 8, '--out', run / 'run', '--results', tmp_path, '--resume', '--quiet')
    _one_line_error(out, 'is from another run', 'model hid_T: 64 -> 32', 'epochs: 2 -> 3', 'lr: 0.001 -> 0.01')
    assert _snapshot(run / 'run') == before and not list(tmp_path.iterdir())


@pytest.mark.parametrize('flag,value,words', [('--lr', 'nan', 'lr must be a finite number > 0, got nan'),
                                              ('--lr', '-1', 'lr must be a finite number > 0'),
                                              ('--alpha', '-0.5', 'alpha must be a finite number >= 0'),
                                              ('--epochs', '0', 'epochs must be an integer >= 1')])
def test_bad_numbers_are_one_line_errors(tmp_path, flag, value, words):
    out = tau_course('train', '--config', 'mmnist_cpu_tiny', flag, value, '--out', tmp_path / 'run', '--results', tmp_path / 'res')
    _one_line_error(out, words)
    assert not (tmp_path / 'run').exists() and not (tmp_path / 'res').exists()
