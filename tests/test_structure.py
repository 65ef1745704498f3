"""The library's import structure is a straight line: files -> data -> model parts -> model -> losses, metrics ->
learner -> recipes/runner -> CLI, datasets, viz, baselines, experiments, bench. Every import (module level and inside
functions) is read with `ast` and checked against the chapter order and the boundaries below; a planted violation of
each rule shows that the check can fail."""
import ast, re, shutil
from pathlib import Path

import pytest

from conftest import ROOT

PKG = 'tau_course'
LEARNER = 'train'  # the generic learner: from the course it imports only files (no TAU module)
MODEL_PARTS = ('model', 'encdec', 'sa', 'da', 'block')  # never import data, the learner or plots
HEADER = re.compile(r'File to edit: (?:\.\./)+nbs/(\S+)\.ipynb')


def modules(pkg: Path) -> dict:
    "dotted module name (without the package) -> (path, chapter notebook stem)."
    out = {}
    for p in sorted(pkg.rglob('*.py')):
        if p.name.startswith('_'): continue
        m = HEADER.search(p.read_text())
        assert m, f'{p} has no nbdev header naming its notebook'
        out['.'.join(p.relative_to(pkg).with_suffix('').parts)] = (p, m.group(1))
    return out


def _imports(tree: ast.Module, name: str):
    "(imported module relative to the package or None, imported names, line, enclosing function or None) per import."
    pkg_parts = name.split('.')[:-1]
    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            f = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name == PKG or a.name.startswith(PKG + '.'): yield a.name[len(PKG) + 1:] or None, [], child.lineno, func
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolve against this module's package
                    base = pkg_parts[:len(pkg_parts) - child.level + 1] if child.level > 1 else pkg_parts
                    target = '.'.join([*base, *(child.module.split('.') if child.module else [])])
                elif child.module and (child.module == PKG or child.module.startswith(PKG + '.')):
                    target = child.module[len(PKG) + 1:]
                else: continue
                names = [a.name for a in child.names]
                if not target:  # `from tau_course import bench`
                    for n in names: yield n, [], child.lineno, func
                else: yield target, names, child.lineno, func
            yield from visit(child, f)
    yield from visit(tree, None)


def _top(mod: str) -> str: return mod.split('.')[0]


def violations(pkg: Path) -> list:
    "Every broken rule in package folder `pkg`, as 'module:line: what'."
    mods, bad = modules(pkg), []
    order = {m: stem for m, (_, stem) in mods.items()}
    for name, (path, stem) in mods.items():
        for target, names, line, func in _imports(ast.parse(path.read_text()), name):
            if target is None or target not in mods:
                continue
            where = f'{name}:{line}'
            lazy_ok = (name == 'cli' and func is not None) or func == '__getattr__'
            if order[target] > stem and not lazy_ok: bad.append(f'{where}: imports the later chapter {target} ({order[target]} > {stem})')
            if name == LEARNER and target != 'files': bad.append(f'{where}: the learner imports {target} (it may import only files)')
            if name in MODEL_PARTS and _top(target) in ('data', 'train', 'viz'): bad.append(f'{where}: model part imports {target}')
            if name == 'metrics' and target == 'model': bad.append(f'{where}: metrics imports model')
            if target == 'cli': bad.append(f'{where}: imports the CLI')
            private = [n for n in names if n.startswith('_')]
            if private and target != name: bad.append(f'{where}: imports private {private} from {target}')
    return bad


def test_the_library_follows_its_import_rules():
    assert violations(ROOT / PKG) == []


def test_every_module_is_checked():
    mods = modules(ROOT / PKG)
    assert {'files', 'data', 'model', 'train', 'recipes', 'runner', 'cli', 'bench'} <= set(mods), sorted(mods)


PLANTS = {  # module -> (line to append, words the report must contain)
    'model': ('from .cli import main', 'imports the CLI'),
    'sa': ('from .data import MovingMNIST', 'model part imports data'),
    'train': ('def f():\n    from .model import TAU', 'the learner imports model'),
    'metrics': ('from .model import TAU', 'metrics imports model'),
    'data': ('from .recipes import train', 'imports the later chapter recipes'),
    'recipes': ('from .model import _check_config_private', "imports private ['_check_config_private']"),
}


@pytest.mark.parametrize('module', sorted(PLANTS))
def test_a_planted_violation_is_reported(tmp_path, module):
    pkg = tmp_path / PKG
    shutil.copytree(ROOT / PKG, pkg, ignore=shutil.ignore_patterns('__pycache__'))
    line, words = PLANTS[module]
    p = pkg / f'{module}.py'; p.write_text(p.read_text() + '\n' + line + '\n')
    found = violations(pkg)
    assert any(words in v and v.startswith(f'{module}:') for v in found), found


def test_lazy_imports_are_allowed_only_in_the_cli(tmp_path):
    pkg = tmp_path / PKG
    shutil.copytree(ROOT / PKG, pkg, ignore=shutil.ignore_patterns('__pycache__'))
    (pkg / 'cli.py').write_text((pkg / 'cli.py').read_text() + '\ndef _late():\n    from .bench import run_grid\n')
    (pkg / 'runner.py').write_text((pkg / 'runner.py').read_text() + '\ndef _late():\n    from .bench import run_grid\n')
    found = violations(pkg)
    assert not any(v.startswith('cli:') for v in found) and any(v.startswith('runner:') and 'later chapter bench' in v for v in found), found
