"""The dataset modules (chapters 11-14) through their public interface, on format-true fixtures and the real KTH clip.

Each of tau_course.datasets.{taxibj,kth,kitticaltech,human} exports NAME, MODEL, RECIPE, FIXTURE_NOTE and
make_fixture(dst) -> src, prepare(src, root) -> cache folder, make_datasets(root, split, **kw) -> Dataset.
Tests that take more than a minute on two CPU cores run only with TAU_SLOW=1 (one step of the full
KITTI->Caltech and Human3.6M models)."""
import hashlib, importlib, json, os, shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT
from tau_course.files import ChecksumError
from tau_course.losses import tau_loss
from tau_course.model import CONFIGS, TAU

NAMES = ('taxibj', 'kth', 'kitticaltech', 'human')
SPLITS = {'taxibj': ('train', 'test'), 'kth': ('train', 'test'), 'kitticaltech': ('train', 'val', 'test'), 'human': ('train', 'test')}
# REFERENCE.md §5: (in_shape, pre, aft, epochs, lr, sched)
REFERENCE = {'taxibj': ((4, 2, 32, 32), 4, 4, 50, 5e-4, 'cosine'), 'kth': ((10, 1, 128, 128), 10, 20, 100, 1e-3, 'onecycle'),
             'kitticaltech': ((10, 3, 128, 160), 10, 1, 100, 1e-2, 'onecycle'), 'human': ((4, 3, 256, 256), 4, 4, 50, 1e-3, 'onecycle')}
SAMPLE = ROOT / 'data' / 'kth_sample' / 'person01_boxing_d1_uncomp.avi'
slow = pytest.mark.skipif(not os.environ.get('TAU_SLOW'), reason='slow (over a minute on 2 CPU cores): set TAU_SLOW=1')


def module(name): return importlib.import_module(f'tau_course.datasets.{name}')


@pytest.fixture(scope='module', params=NAMES)
def prepared(request, tmp_path_factory):
    "(module, data root) with the module's fixture prepared into a fresh data folder."
    mod, tmp = module(request.param), tmp_path_factory.mktemp(request.param)
    mod.prepare(mod.make_fixture(tmp / 'download'), root=tmp / 'data')
    return mod, tmp / 'data'


def test_interface(prepared):
    mod, root = prepared
    assert mod.NAME in NAMES and mod.MODEL == mod.NAME and mod.MODEL in CONFIGS
    assert isinstance(mod.FIXTURE_NOTE, str) and 'not' in mod.FIXTURE_NOTE  # says it is not the real data
    shape, pre, aft, epochs, lr, sched = REFERENCE[mod.NAME]
    r = mod.RECIPE
    assert (CONFIGS[mod.MODEL].in_shape, CONFIGS[mod.MODEL].in_shape[0], r.n_future or pre, r.epochs, r.lr, r.sched) == (shape, pre, aft, epochs, lr, sched)
    assert (r.batch_size, r.alpha, r.model, r.data) == (16, 0.1, mod.MODEL, mod.NAME)
    manifest = json.loads((root / mod.NAME / 'manifest.json').read_text())
    assert manifest['name'] == mod.NAME and manifest['files']
    for rel, rec in manifest['files'].items():
        assert hashlib.sha256((root / mod.NAME / rel).read_bytes()).hexdigest() == rec['sha256'], rel


def test_items(prepared):
    "Every split yields (x, y) float32 (T, C, H, W) in [0, 1] with the benchmark's shapes; set_epoch exists."
    mod, root = prepared
    (T, C, H, W), pre, aft = REFERENCE[mod.NAME][:3]
    for split in SPLITS[mod.NAME]:
        ds = mod.make_datasets(root, split)
        assert len(ds) > 0, split
        ds.set_epoch(1)
        x, y = ds[len(ds) - 1]
        assert x.dtype == y.dtype == torch.float32
        assert x.shape == (pre, C, H, W) and y.shape == (aft, C, H, W), (split, x.shape, y.shape)
        assert 0 <= x.min() and x.max() <= 1 and 0 <= y.min() and y.max() <= 1
        assert x.std() > 0  # not blank


def test_split_sizes(prepared):
    "The split logic on the fixtures: person / source / list windows as the chapters derive them."
    mod, root = prepared
    expected = {'taxibj': {'train': 24, 'test': 8}, 'kth': {'train': 14, 'test': 7},
                'kitticaltech': {'train': 6, 'val': 1, 'test': 4}, 'human': {'train': 2, 'test': 2}}[mod.NAME]
    assert {s: len(mod.make_datasets(root, s)) for s in SPLITS[mod.NAME]} == expected
    if mod.NAME == 'human':  # the benchmark's lists mix subjects; the subject protocol does not
        assert mod.make_datasets(root, 'test').protocol == 'lists'
        sub = mod.make_datasets(root, 'test', protocol='subjects')
        assert {c.split('_')[0] for c, _ in sub.windows} == {'S9'} and len(sub) == 2


def test_taxibj_normalisation(tmp_path):
    "(x + 1) / 2 of the file's [-1, 1] flows, exactly the reference's arithmetic."
    tb = module('taxibj')
    src = tb.make_fixture(tmp_path)
    tb.prepare(src, root=tmp_path / 'data')
    z = np.load(src)
    x, y = tb.make_datasets(tmp_path / 'data', 'test')[5]
    assert torch.equal(x, torch.from_numpy(((z['X_test'][5] + 1) / 2).astype(np.float32)))
    assert torch.equal(y, torch.from_numpy(((z['Y_test'][5] + 1) / 2).astype(np.float32)))


# ---------------------------------------------------------------- the real KTH clip
def test_kth_sample_is_the_shared_clip():
    sums = dict(reversed(l.split()) for l in (SAMPLE.parent / 'SHA256SUMS').read_text().splitlines() if l.strip())
    assert hashlib.sha256(SAMPLE.read_bytes()).hexdigest() == sums[SAMPLE.name] == module('kth').KNOWN_SHA256[SAMPLE.name]


def test_kth_real_clip(tmp_path):
    "360 frames of 160x120 decode to 128x128 grayscale windows in [0, 1]: 12 of 10->20, 7 of 10->40, all person 01 = train."
    kth = module('kth')
    assert kth.avi_info(SAMPLE) == dict(frames=360, width=160, height=120)
    frames = kth.read_avi(SAMPLE)
    assert frames.shape == (360, 120, 160) and frames.dtype == np.uint8 and frames.min() < 50 and frames.max() > 150
    kth.prepare(SAMPLE, root=tmp_path)
    train = kth.make_datasets(tmp_path, 'train')
    assert len(train) == 12 and len(kth.make_datasets(tmp_path, 'train', n_future=40)) == 7 and len(kth.make_datasets(tmp_path, 'test')) == 0
    x, y = train[0]
    assert x.shape == (10, 1, 128, 128) and y.shape == (20, 1, 128, 128) and x.dtype == torch.float32
    assert 0 <= x.min() < 0.2 and 0.6 < x.max() <= 1


def test_kth_resize_matches_opencv():
    "The loader's torch resize equals the reference's cv2.resize on float32 frames."
    cv2, kth = pytest.importorskip('cv2'), module('kth')
    frames = kth.read_avi(SAMPLE)[:10]
    ref = np.stack([cv2.resize(f.astype(np.float32), (128, 128)) for f in frames]) / 255
    assert np.abs(kth.resize_frames(frames)[:, 0].numpy() - ref).max() < 1e-6


# ---------------------------------------------------------------- bad input
def assert_nothing_written(root: Path):
    assert not root.exists() or list(root.iterdir()) == [], sorted(p.name for p in root.iterdir())


@pytest.mark.parametrize('name', NAMES)
def test_missing_source(name, tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        module(name).prepare(tmp_path / 'nowhere', root=tmp_path / 'data')
    assert_nothing_written(tmp_path / 'data')
    with pytest.raises(FileNotFoundError, match=f'tau-course data prepare {name}'):
        module(name).make_datasets(tmp_path / 'data')


def test_truncated_kth_clip(tmp_path):
    kth = module('kth')
    src = kth.make_fixture(tmp_path / 'src')
    bad = src / 'boxing' / 'person03_boxing_d1_uncomp.avi'
    bad.write_bytes(SAMPLE.read_bytes()[:800_000])  # a truncated copy of the real clip
    with pytest.raises(ValueError, match='person03_boxing_d1_uncomp.avi: truncated video'):
        kth.prepare(src, root=tmp_path / 'data')
    assert_nothing_written(tmp_path / 'data')


def test_wrong_size_kth_clip(tmp_path):
    kth = module('kth')
    src = kth.make_fixture(tmp_path / 'src', n_frames=3, persons=(4,), actions=('walking',), hw=(240, 320))
    with pytest.raises(ValueError, match=r'person04_walking_d1_uncomp.avi: expected 160x120 \(WxH\) frames, got 320x240'):
        kth.prepare(src, root=tmp_path / 'data')
    assert_nothing_written(tmp_path / 'data')


def test_bad_taxibj(tmp_path):
    tb = module('taxibj')
    z = dict(np.load(tb.make_fixture(tmp_path / 'src')))
    np.savez(tmp_path / 'small.npz', **{**z, 'Y_train': z['Y_train'][..., :16]})
    with pytest.raises(ValueError, match=r'small.npz: Y_train: expected shape \(N, 4, 2, 32, 32\), got \(24, 4, 2, 32, 16\)'):
        tb.prepare(tmp_path / 'small.npz', root=tmp_path / 'data')
    b = (tmp_path / 'src' / 'dataset.npz').read_bytes()
    (tmp_path / 'cut.npz').write_bytes(b[: len(b) // 3])
    with pytest.raises(ValueError, match='cut.npz: not a readable .npz'):
        tb.prepare(tmp_path / 'cut.npz', root=tmp_path / 'data')
    assert_nothing_written(tmp_path / 'data')


def test_bad_kitticaltech(tmp_path):
    kc = module('kitticaltech')
    src = kc.make_fixture(tmp_path / 'src')
    seq = src / 'caltech' / 'set06' / 'V001.seq'
    seq.write_bytes(seq.read_bytes()[:-5000])
    with pytest.raises(ValueError, match='V001.seq: truncated'):
        kc.prepare(src, root=tmp_path / 'data')
    kc.write_hkl_v2(src / 'kitti_hkl' / 'X_train.hkl', np.zeros((75, 128, 128, 3), np.uint8))
    with pytest.raises(ValueError, match=r'X_train.hkl: expected uint8 frames \(N, 128, 160, 3\)'):
        kc.prepare(src, root=tmp_path / 'data')
    assert_nothing_written(tmp_path / 'data')


def test_bad_human(tmp_path):
    hu = module('human')
    src = hu.make_fixture(tmp_path / 'src', n_frames=6, size=300)
    f = src / 'images' / 'S9_Walking.60457274_000006.jpg'
    f.write_bytes(f.read_bytes()[:2000])
    with pytest.raises(ValueError, match='S9_Walking.60457274_000006.jpg: not a readable JPEG'):
        hu.prepare(src, root=tmp_path / 'data')
    assert_nothing_written(tmp_path / 'data')


def test_tampered_cache_is_refused(tmp_path):
    tb = module('taxibj')
    cache = tb.prepare(tb.make_fixture(tmp_path / 'src'), root=tmp_path / 'data')
    a = np.load(cache / 'X_test.npy'); a[0, 0, 0, 0, 0] = 0.5; np.save(cache / 'X_test.npy', a)  # same size, new content
    with pytest.raises(ChecksumError, match='X_test.npy: SHA-256 mismatch'):
        tb.make_datasets(tmp_path / 'data', 'test')


def test_horizon_keyword(tmp_path):
    "n_future is the horizon's one keyword and attribute; OpenSTL's aft is not accepted."
    from tau_course.files import UsageError
    kth = module('kth')
    kth.prepare(SAMPLE, root=tmp_path)
    new = kth.make_datasets(tmp_path, 'train', n_future=40)
    assert (new.n_future, len(new)) == (40, 7)
    with pytest.raises(TypeError, match='aft'):
        kth.make_datasets(tmp_path, 'train', aft=40)
    with pytest.raises(UsageError, match="split must be 'train' or 'test'"):
        kth.make_datasets(tmp_path, 'val')


def test_hickle5_files_read():
    "Files written by the real hickle 5.0.3 (tests/data) read with h5py alone."
    kc = module('kitticaltech')
    assert kc.read_hkl(ROOT / 'tests' / 'data' / 'hickle5_array.hkl').shape == (2, 4, 5, 3)
    assert kc.read_hkl(ROOT / 'tests' / 'data' / 'hickle5_list.hkl')[2] == 'road-2011_09_26_drive_0015_sync'


# ---------------------------------------------------------------- one training step of the reference model on fixture data
def one_step(name, root):
    mod = module(name)
    torch.manual_seed(0)
    x, y = next(iter(torch.utils.data.DataLoader(mod.make_datasets(root, 'train'), batch_size=1)))
    model = TAU.from_config(mod.MODEL)
    opt = torch.optim.Adam(model.parameters(), lr=mod.RECIPE.lr)
    preds, cur = [], x
    while sum(p.shape[1] for p in preds) < y.shape[1]:  # autoregressive passes (KTH 10 -> 20: two)
        cur = model(cur); preds.append(cur)
    loss = tau_loss(torch.cat(preds, 1)[:, : y.shape[1]], y, alpha=mod.RECIPE.alpha)
    loss.backward(); opt.step()
    assert torch.isfinite(loss)


@pytest.mark.parametrize('name', [n if n in ('taxibj', 'kth') else pytest.param(n, marks=slow) for n in NAMES])
def test_one_step_full_config(name, tmp_path):
    mod = module(name)
    mod.prepare(mod.make_fixture(tmp_path / 'src'), root=tmp_path / 'data')
    one_step(name, tmp_path / 'data')


def test_one_registry_of_recipes():
    "Each data set's recipe is the one the library runs: registered under its name (no second schema to keep in step)."
    from tau_course.recipes import DATASETS, get_recipe
    for name in NAMES:
        assert get_recipe(name) == module(name).RECIPE and name in DATASETS, name
    assert get_recipe('kth40').n_future == 40
