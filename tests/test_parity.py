"""Parity with the reference implementation (REFERENCE.md §9), through the public API only.

The tiny fixture is committed under tests/fixtures; others are read from ../shared/fixtures when that folder exists."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT
from tau_course.losses import ddr, tau_loss
from tau_course.model import TAU, convert_key, load_openstl, openstl_state_dict

FIXTURES = sorted({p.name: p for d in (ROOT / 'tests' / 'fixtures', ROOT.parent / 'shared' / 'fixtures')
                   if d.is_dir() for p in d.glob('*.npz')}.values())


def test_tiny_fixture_is_committed():
    assert 'openstl_tau_tiny.npz' in [p.name for p in FIXTURES]


@pytest.mark.parametrize('path', FIXTURES, ids=[p.stem for p in FIXTURES])
def test_reference_parity(path: Path):
    z = np.load(path, allow_pickle=False)
    cfg = json.loads(path.with_suffix('.json').read_text())
    keys = 'in_shape hid_S hid_T N_S N_T mlp_ratio drop drop_path spatio_kernel_enc spatio_kernel_dec'.split()
    model = TAU(**{k: cfg[k] for k in keys})
    sd = {k[3:]: torch.from_numpy(z[k]) for k in z.files if k.startswith('sd/')}
    load_openstl(model, sd).eval()
    x, y = torch.from_numpy(z['x']), torch.from_numpy(z['y'])
    out = model(x)
    assert (out.detach() - torch.from_numpy(z['out_eval'])).abs().max() <= 1e-5
    loss = tau_loss(out, y, alpha=0.1)
    for name, got in (('ddr', ddr(out, y)), ('mse_loss', F.mse_loss(out, y)), ('loss', loss)):
        ref = float(z[name])
        assert abs(got.item() - ref) <= 1e-5 * abs(ref), (name, got.item(), ref)
    loss.backward()
    params = dict(model.named_parameters())
    grads = [k for k in z.files if k.startswith('grad/')]
    assert len(grads) == len(params)  # every parameter has a reference gradient
    for k in grads:
        g_ref = torch.from_numpy(z[k])
        g = params[convert_key(k[5:], model.config.N_T, to='ours')].grad
        assert (g - g_ref).abs().max() <= 1e-4 * g_ref.abs().max(), k
    back = openstl_state_dict(model)
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
