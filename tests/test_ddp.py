"""DDP under torchrun on CPU (gloo): two processes report the evaluation metrics of one, train on the same global
batches, and only rank 0 writes files."""
import json, os, stat, subprocess, sys
from pathlib import Path

import pytest

from conftest import ROOT

# Rank 0 keeps the usual umask, the other ranks get 0o077: any file a non-zero rank created would have mode 0600.
WORKER = r'''
import json, os, sys, torch
torch.set_num_threads(1)
rank = int(os.environ.get('RANK', '0'))
os.umask(0o022 if rank == 0 else 0o077)
import torch.distributed as dist
from safetensors.torch import load_file
from toys import ToyNet, ToyVideo  # tests/toys.py; also registers data='toy' and model='toy'
from tau_course.train import get_rank, seed_everything, setup_distributed
from tau_course.recipes import TrainConfig, evaluate, train
out, res = sys.argv[1], sys.argv[2]
setup_distributed()
cfg = TrainConfig(data='toy', model='toy', model_kw=dict(p=0.0), epochs=2, batch_size=8, val_batch_size=4, lr=1e-2,
                  seed=3, data_kw=dict(length=32, val_length=13))  # 13: ranks hold unequal validation shards
final = train(cfg, out, quiet=True)
seed_everything(123); fixed = ToyNet(p=0.0)                     # the same weights in every process
ev = evaluate(fixed, ToyVideo(13, 4, 16, seed=9), batch_size=4)
if get_rank() == 0:
    w = torch.cat([t.flatten() for t in load_file(os.path.join(out, 'last', 'model.safetensors')).values()])
    world = dist.get_world_size() if dist.is_initialized() else 1
    with open(res, 'w') as f: json.dump(dict(final=final, eval=ev, weights=w.tolist(), world=world), f)
if dist.is_initialized(): dist.destroy_process_group()
'''


# A stop rule that only rank 1 fires (after step 3): the ranks agree, so both stop there instead of rank 0 waiting in
# a gradient all-reduce that rank 1 never joins (the test would hang until its timeout).
STOP_WORKER = r'''
import json, os, sys, torch
torch.set_num_threads(1)
import toys
import torch.distributed as dist
from tau_course.train import StopRule, get_rank
from tau_course.recipes import TrainConfig, train
class RankOneStops(StopRule):
    why = 'rank 1 after step 3'
    def after_step(self, learn): return get_rank() == 1 and learn.n_step >= 3
cfg = TrainConfig(data='toy', model='toy', model_kw=dict(p=0.0), epochs=2, batch_size=8, val_batch_size=4, lr=1e-2,
                  seed=3, data_kw=dict(length=64, val_length=8))  # 8 steps an epoch
rec = train(cfg, sys.argv[1], quiet=True, stop=[RankOneStops()])
with open(sys.argv[2] + f".{os.environ.get('RANK', '0')}", 'w') as f: json.dump(dict(step=rec['step'], stopped=rec['stopped']), f)
if dist.is_initialized(): dist.destroy_process_group()
'''


def _launch(tmp_path, nproc, worker=WORKER):
    script = tmp_path / 'worker.py'; script.write_text(worker)
    out, res = tmp_path / f'run{nproc}', tmp_path / f'res{nproc}.json'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.pathsep.join([str(ROOT), str(ROOT / 'tests')])}
    cmd = [sys.executable, str(script), str(out), str(res)] if nproc == 1 else \
          [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(nproc),
           str(script), str(out), str(res)]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return out, (json.loads(res.read_text()) if res.is_file() else res)


def _rel(a, b): return abs(a - b) / max(abs(a), abs(b), 1e-12)


def test_two_processes_match_one(tmp_path):
    out1, one = _launch(tmp_path, 1)
    out2, two = _launch(tmp_path, 2)
    assert (one['world'], two['world']) == (1, 2)
    # evaluation of the same weights: sharded over ranks, float64 sums all-reduced -> the numbers of one process
    assert one['eval'].keys() == two['eval'].keys() >= {'mse', 'mae', 'psnr', 'ssim'}
    for k in one['eval']: assert _rel(one['eval'][k], two['eval'][k]) < 1e-6, (k, one['eval'][k], two['eval'][k])
    # training: each step sees the same 8 samples (4 per rank), so only float rounding separates the runs
    w1, w2 = one['weights'], two['weights']
    assert max(abs(a - b) for a, b in zip(w1, w2)) < 1e-5 * max(abs(a) for a in w1)  # measured: 2e-6
    for k in ('train_loss', 'valid_loss', 'mse', 'ssim', 'step'):
        assert _rel(one['final'][k], two['final'][k]) < 1e-5, (k, one['final'][k], two['final'][k])  # measured: <= 1.2e-7
    # only rank 0 wrote: the same files as one process, all created under rank 0's umask
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob('*'))
    assert files(out1) == files(out2) == ['best', 'best/SHA256SUMS', 'best/config.json', 'best/model.safetensors',
                                          'best/state.json', 'last', 'last/SHA256SUMS', 'last/config.json',
                                          'last/model.safetensors', 'last/state.json', 'last/trainer.safetensors',
                                          'log.csv', 'log.json']
    modes = {str(p.relative_to(out2)): stat.S_IMODE(p.stat().st_mode) for p in out2.rglob('*') if p.is_file()}
    assert set(modes.values()) == {0o644}, modes
    assert len(json.loads((out2 / 'last' / 'state.json').read_text())['rng']) == 2  # every rank's RNG state


def test_a_stop_rule_fired_on_one_rank_stops_every_rank(tmp_path):
    out, res = _launch(tmp_path, 2, STOP_WORKER)
    ranks = [json.loads(Path(f'{res}.{r}').read_text()) for r in (0, 1)]
    want = dict(step=3, stopped=dict(rule='rank 1 after step 3', step=3, epoch=0, mid_epoch=True))
    assert ranks == [want, want], ranks
    assert json.loads((out / 'last' / 'state.json').read_text())['step'] == 3  # `last` of the step it stopped at
