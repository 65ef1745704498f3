"""CUDA checks that the CPU suite cannot make: a training step of a small TAU in bf16 and in fp16, a resume on CUDA that
is bit-exact with `deterministic=True` (`tau-course train --deterministic`), and `torch.compile` of a training step.
Skipped without a CUDA device; `python -m tau_course.gpu_check` runs them on one (its env stage). Imports only torch,
pytest and tau_course: the device machine has no fastcore or nbdev."""
import math

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device (python -m tau_course.gpu_check)')

# The CPU-scale TAU on a few pooled 64x64 sequences: 4 optimiser steps an epoch.
TINY = dict(data='mmnist', model='mmnist_cpu_tiny', epochs=1, batch_size=8, val_batch_size=8,
            data_kw=dict(image_size=64, pool=2, length=32, val_length=8))


def _cfg(**kw):
    from tau_course.recipes import TrainConfig
    return TrainConfig(**{**TINY, **kw})


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_a_training_step_on_cuda(tmp_path, amp):
    from tau_course.recipes import load_model, train
    rec = train(_cfg(amp=amp), tmp_path, device='cuda', quiet=True)
    assert rec['step'] == 4 and math.isfinite(rec['train_loss']) and math.isfinite(rec['valid_loss']), rec
    model = load_model(tmp_path / 'last', 'cuda')
    assert all(p.is_cuda and torch.isfinite(p).all() for p in model.parameters())


def _tensors(d):
    return {f'{n}:{k}': v for n in ('model', 'trainer') for k, v in load_file(d / f'{n}.safetensors').items()}


def test_a_cuda_resume_is_bit_exact_with_deterministic(tmp_path):
    "Stopped after 3 of 8 steps (bf16) and resumed: every weight and optimiser tensor equals the uninterrupted run's."
    from tau_course.recipes import train
    from tau_course.train import StopAfterSteps
    cfg = _cfg(epochs=2, ckpt_every=1, amp='bf16')
    a, b = tmp_path / 'straight', tmp_path / 'stopped'
    train(cfg, a, device='cuda', deterministic=True, quiet=True)
    train(cfg, b, device='cuda', deterministic=True, quiet=True, stop=[StopAfterSteps(3)])
    rec = train(cfg, b, resume=True, device='cuda', deterministic=True, quiet=True)
    assert rec['step'] == 8, rec
    ta, tb = _tensors(a / 'last'), _tensors(b / 'last')
    assert ta.keys() == tb.keys()
    diff = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not diff, f'tensors differ after a CUDA resume: {diff[:5]}'


def test_torch_compile_trains_on_cuda():
    "A compiled training step of a small TAU: outputs as eager's (fp32, TF32 off), finite gradients that match eager's."
    from tau_course.model import TAU
    from tau_course.train import backend_flags
    torch.manual_seed(0)
    model = TAU(in_shape=(10, 1, 32, 32), hid_S=16, hid_T=64, N_S=2, N_T=2).cuda()
    x = torch.rand(2, 10, 1, 32, 32, device='cuda')
    with backend_flags('cuda', deterministic=True):
        ref = model(x); ref.square().mean().backward()
        g_ref = [p.grad.clone() for p in model.parameters()]; model.zero_grad()
        out = torch.compile(model, dynamic=False)(x); out.square().mean().backward()
    assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-4
    for p, g in zip(model.parameters(), g_ref):
        assert torch.isfinite(p.grad).all() and (p.grad - g).abs().max() <= 1e-3 * g.abs().max() + 1e-8


def test_the_batched_generator_renders_the_same_bits_on_cuda():
    "Moving MNIST rendered on the GPU (uint8 frames, float (x, y), pooled) equals the CPU's, bit for bit."
    from tau_course.data import MovingMNIST, Pooled
    ds, idx = MovingMNIST(length=256, seed=3), list(range(0, 256, 3))
    cpu, gpu = ds.sequences(idx), ds.sequences(idx, device='cuda')
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
    for a, b in zip(ds.batch(idx), ds.batch(idx, device='cuda')): assert b.is_cuda and torch.equal(b.cpu(), a)
    p = Pooled(ds, 2)
    for a, b in zip(p.batch(idx), p.batch(idx, device='cuda')): assert torch.equal(b.cpu(), a)
