"""Resume continues the same run: a training process killed with SIGKILL at a random step and resumed ends with
weights bit-identical to an uninterrupted run; a NaN loss stops training without touching the last good checkpoint."""
import importlib.util, json, os, random, signal, subprocess, sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from toys import ToyNet  # also registers data='toy' and model='toy' with the recipes

HAVE_TAU = importlib.util.find_spec('tau_course.model') is not None

# 3 epochs x 10 optimiser steps; a checkpoint after every step. A tiny TAU with drop path (global RNG) when the model
# chapter is there, else the toy conv net with dropout.
CFG = dict(data='toy', epochs=3, batch_size=4, lr=1e-2, ckpt_every=1, seed=7,
           data_kw=dict(length=40, val_length=8),
           **(dict(model='mmnist', model_kw=dict(in_shape=[4, 1, 16, 16], hid_S=8, hid_T=16, N_S=2, N_T=2, drop_path=0.2))
              if HAVE_TAU else dict(model='toy', model_kw=dict(p=0.2))))
N_STEPS = 30

SCRIPT = r'''
import json, sys, torch
torch.set_num_threads(1)
import toys  # registers data='toy' and model='toy' (tests/toys.py)
from tau_course.train import Callback
from tau_course.recipes import TrainConfig, train
class Announce(Callback):
    order = 100  # after CheckpointCB: the checkpoint of this step is on disk
    def after_step(self, learn): print(f"step {learn.n_step}", flush=True)
cfg = TrainConfig(**json.loads(sys.argv[2]))
train(cfg, sys.argv[1], resume=sys.argv[3] == '1', cbs=[Announce()], quiet=True)
'''


def _cmd(out, resume, cfg=CFG): return [sys.executable, '-c', SCRIPT, str(out), json.dumps(cfg), '1' if resume else '0']
def _env(): return {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.pathsep.join([str(ROOT), str(ROOT / 'tests')])}


def _run(out, resume=False, cfg=CFG):
    p = subprocess.run(_cmd(out, resume, cfg), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def _kill_at(out, step, cfg=CFG):
    "Start a run and SIGKILL it as soon as it reports `step` (the kill lands somewhere in the next step or its save)."
    p = subprocess.Popen(_cmd(out, False, cfg), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:
            if line.strip() == f'step {step}':
                os.kill(p.pid, signal.SIGKILL); break
    finally:
        p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr.read()[-3000:])


def _tensors(d): return {f'{n}:{k}': v for n in ('model', 'trainer') for k, v in load_file(d / f'{n}.safetensors').items()}


# sized in epochs, and sized in steps (a --minutes run: 25 steps, the third epoch cut short, OneCycle over 25 steps)
@pytest.mark.parametrize('sizing', [{}, {'steps': 25}], ids=['epochs', 'steps'])
def test_sigkill_then_resume_is_bit_identical(tmp_path, sizing):
    from tau_course.train import find_checkpoint
    a, b, cfg = tmp_path / 'straight', tmp_path / 'killed', {**CFG, **sizing}
    _run(a, cfg=cfg)
    step = random.Random().randint(2, sizing.get('steps', N_STEPS) - 2)
    _kill_at(b, step, cfg)
    ck = find_checkpoint(b / 'last')
    assert ck is not None, f'killed after step {step}: no loadable checkpoint in {sorted(os.listdir(b))}'
    saved = json.loads((ck / 'state.json').read_text())['step']
    assert saved >= step, (saved, step)
    out = _run(b, resume=True, cfg=cfg)
    assert out.split()[:2] == ['step', str(saved + 1)], out[:200]  # it continued from the checkpoint, not from scratch
    ta, tb = _tensors(a / 'last'), _tensors(b / 'last')
    assert ta.keys() == tb.keys()
    diff = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not diff, f'killed after step {step}: tensors differ after resume: {diff[:5]}'
    sa, sb = (json.loads((d / 'last' / 'state.json').read_text()) for d in (a, b))
    for k in ('step', 'epoch', 'batch', 'scheduler', 'param_groups', 'rng', 'best'): assert sa[k] == sb[k], k
    la, lb = (json.loads((d / 'log.json').read_text()) for d in (a, b))
    keep = ('epoch', 'step', 'train_loss', 'valid_loss', 'lr', 'mse', 'ssim')
    assert [{k: r.get(k) for k in keep} for r in la] == [{k: r.get(k) for k in keep} for r in lb]
    assert not list(b.glob('*.tmp-*')) and not (b / 'last.old').exists()
    assert sa['step'] == sizing.get('steps', N_STEPS)  # a run sized in steps stops on its last one


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    from tau_course.train import Callback, EXIT_NONFINITE, NonFiniteLossError, find_checkpoint, load_checkpoint
    from tau_course.recipes import TrainConfig, train

    class PoisonAt(Callback):
        order = -20  # before NonFiniteCB
        def after_loss(self, learn):
            if learn.training and learn.n_step + 1 == 13: learn.loss = learn.loss * float('inf')

    cfg = TrainConfig(**{**CFG, 'model': 'toy', 'model_kw': dict(p=0.2)})
    with pytest.raises(NonFiniteLossError, match=r'non-finite loss \(inf\) at step 13 \(epoch 1, batch 2\)') as e:
        train(cfg, tmp_path, cbs=[PoisonAt()], quiet=True)
    assert (e.value.step, EXIT_NONFINITE) == (13, 3)
    model = ToyNet(p=0.2)
    state = load_checkpoint(tmp_path / 'last', model)
    assert state['step'] == 12 and find_checkpoint(tmp_path / 'last').name == 'last'
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
