"""Model configurations refused the same way from Python and from the shell: one `UsageError` naming the field, the
value and what is allowed (`--model-opt` exits 2 with that one line), before any layer is built or any file written."""
import pytest
import torch

from tau_course.cli import main
from tau_course.files import UsageError
from tau_course.model import TAU

# (--model-opt as typed, the field's words in the message)
CASES = [('foo=1', "unknown TAU field(s) ['foo']"), ('name=x', "unknown TAU field(s) ['name']"),
         ('hid_T=nan', "hid_T must be an integer >= 1, got 'nan'"), ('hid_S="16"', "hid_S must be an even integer >= 2, got '16'"),
         ('hid_S=1.5', 'hid_S must be an even integer >= 2, got 1.5'), ('N_T=1e9', 'N_T must be an integer >= 2'),
         ('mlp_ratio=-2', 'mlp_ratio must be a finite number > 0'), ('drop=2', 'drop must be a number in [0, 1)'),
         ('drop_path=-0.5', 'drop_path must be a number in [0, 1)'), ('use_da=maybe', "use_da must be true or false"),
         ('use_sa=null', 'use_sa must be true or false, got None'),
         ('spatio_kernel_enc=0', 'spatio_kernel_enc must be an odd integer >= 1'),
         ('spatio_kernel_dec=4', 'spatio_kernel_dec must be an odd integer >= 1'),
         ('sa_variant=diagonal', "sa_variant must be one of ['decomposed', 'undilated', 'dense']")]


@pytest.mark.parametrize('opt,words', CASES)
def test_model_opt_is_one_line_exit_2(opt, words, tmp_path, capsys):
    code = main(['train', '--config', 'mmnist_cpu_tiny', '--model-opt', opt, '--out', str(tmp_path / 'run'),
                 '--results', str(tmp_path / 'results'), '--quiet'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], (code, err)
    assert not (tmp_path / 'run').exists() and not (tmp_path / 'results').exists()  # nothing trained, nothing written


@pytest.mark.parametrize('opt,words', CASES)
def test_the_python_api_refuses_the_same(opt, words):
    import json
    k, v = opt.split('=', 1)
    try: v = json.loads(v)
    except ValueError: pass  # a bare word stays a string, as on the command line
    with pytest.raises(UsageError) as e: TAU.from_config('mmnist_cpu_tiny', **{k: v})
    assert words in str(e.value)


def test_an_empty_batch_is_refused():
    m = TAU.from_config('mmnist_cpu_tiny')
    with pytest.raises(UsageError, match='at least one sequence'): m(torch.rand(0, 10, 1, 32, 32))


@pytest.mark.parametrize('argv,words', [
    (['train', '--config', 'mmnist_cpu_tiny', '--val-length', '0'], '--val-length must be an integer >= 1, got 0'),
    (['train', '--config', 'mmnist_cpu_tiny', '--val-length', '-1'], '--val-length must be an integer >= 1, got -1'),
    (['train', '--config', 'mmnist_cpu_tiny', '--length', '0'], '--length must be an integer >= 1'),
    (['train', '--config', 'mmnist_cpu_tiny', '--digits', '0'], '--digits must be an integer >= 1'),
    (['eval', '--ckpt', 'nowhere', '--num-workers', '-1'], '--num-workers must be an integer >= 0, got -1'),
    (['eval', '--ckpt', 'nowhere', '--batch-size', '0'], '--batch-size must be an integer >= 1, got 0')])
def test_options_name_the_flag_typed(argv, words, tmp_path, capsys):
    code = main([*argv, *(['--out', str(tmp_path / 'run')] if argv[0] == 'train' else []),
                 '--results', str(tmp_path / 'results')])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], (code, err)
    assert not (tmp_path / 'run').exists() and not (tmp_path / 'results').exists()


def test_predict_takes_what_the_model_takes_and_checks_n_future():
    from tau_course.model import predict
    m, x = TAU.from_config('mmnist_cpu_tiny'), torch.rand(2, 10, 1, 32, 32)
    assert predict(m, x.numpy(), 3).shape == (2, 3, 1, 32, 32)  # a numpy array, as model(...) would need a tensor
    for n in (2.5, float('nan'), '5', True, 0):
        with pytest.raises(UsageError, match='n_future must be an integer >= 1'): predict(m, x, n)


def test_a_cpu_index_and_fp16_on_the_cpu_are_one_line_errors(tmp_path, capsys):
    for argv, words in ((['--device', 'cpu:5'], "the CPU is one device, 'cpu'"),
                        (['--device', 'cpu', '--amp', 'fp16'], '(--amp bf16 or --amp fp32)')):
        code = main(['train', '--config', 'mmnist_cpu_tiny', *argv, '--out', str(tmp_path / 'run'),
                     '--results', str(tmp_path / 'results')])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and words in err[0], (code, err)


def test_predict_inputs_that_are_not_one_context_array(tmp_path, capsys):
    import numpy as np
    from tau_course.model import TAU
    ckpt = TAU.from_config('mmnist_cpu_tiny').save_pretrained(tmp_path / 'm')
    (tmp_path / 'empty.npy').write_bytes(b'')
    np.save(tmp_path / 'none.npy', np.zeros((0, 10, 1, 32, 32), np.float32))
    np.savez(tmp_path / 'arch.npz', x=np.zeros((10, 1, 32, 32), np.float32))
    (tmp_path / 'arch.npz').rename(tmp_path / 'arch.npy')  # an .npz under an .npy name
    for name, words in (('empty.npy', 'is not a readable .npy array'), ('none.npy', 'expected at least one sequence of frames'),
                        ('arch.npy', 'is an .npz archive')):
        code = main(['predict', '--ckpt', str(ckpt), '--input', str(tmp_path / name), '--out', str(tmp_path / 'p.npy')])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and words in err[0], (name, code, err)
        assert not (tmp_path / 'p.npy').exists()


def test_a_folder_without_digests_loads_only_when_asked(tmp_path, capsys):
    from tau_course.files import SHA256SUMS
    import numpy as np
    ckpt = TAU.from_config('mmnist_cpu_tiny').save_pretrained(tmp_path / 'm')
    (ckpt / SHA256SUMS).unlink()
    np.save(tmp_path / 'ctx.npy', np.zeros((10, 1, 32, 32), np.float32))
    argv = ['predict', '--ckpt', str(ckpt), '--input', str(tmp_path / 'ctx.npy'), '--out', str(tmp_path / 'p.npy')]
    assert main(argv) == 2 and '--unverified' in capsys.readouterr().err and not (tmp_path / 'p.npy').exists()
    from tau_course.files import UnverifiedWarning
    with pytest.warns(UnverifiedWarning): assert main([*argv, '--unverified']) == 0  # loaded, and said so
    assert (tmp_path / 'p.npy').is_file()
