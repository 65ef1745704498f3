"""The explorer chapter in a real browser: JupyterLab on 127.0.0.1 with a token, Debian's chromium driven by Playwright.

Runs every cell of nbs/15_explorers.ipynb (its default path: `#| slow` cells are left out, as nbdev_test does), moves
the scrubber's time slider with the keyboard, and checks that the picture changed and that no cell errored; then reads
the captions a reader sees: the showcase model's first-pass MSE in the scrubber is within 1.2x of its recorded test MSE,
and block 0's DA weights in the attention inspector vary (std >= 0.05; a dead DA is 0.5 everywhere; issue 17).
Screenshots
go to runs/explorers*.png. The server (and its kernel) is stopped at the end, whatever happens.

Needs `playwright` (pip) and a chromium binary (`.ci/install-browser.sh` installs Debian's with apt); without them the
test is skipped and says why. Playwright's own browser download is not used: it needs the internet.
"""
import json, os, re, secrets, shutil, signal, socket, subprocess, time, urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, tool

NB = '15_explorers.ipynb'
RUNS = ROOT / 'runs'


def find_chromium():
    "Path of a chromium binary: $TAU_CHROMIUM, else chromium / chromium-browser on PATH."
    for name in (os.environ.get('TAU_CHROMIUM'), 'chromium', 'chromium-browser'):
        if name and (p := shutil.which(name)): return p
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def default_path_copy(src: Path, dest: Path) -> Path:
    "The notebook without its `#| slow` cells (nbdev_test's default path) and without outputs."
    nb = json.loads(src.read_text())
    nb['cells'] = [c for c in nb['cells'] if not ''.join(c['source']).lstrip().startswith('#| slow')]
    for c in nb['cells']:
        if c['cell_type'] == 'code': c['outputs'], c['execution_count'] = [], None
    dest.write_text(json.dumps(nb))
    return dest


def wait_for_server(url: str, proc, log: Path, timeout: float = 90):
    "Poll `url` until it answers 200; fail with the server log if it exits or never answers."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: pytest.fail(f'jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}')
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200: return
        except OSError: pass
        time.sleep(0.5)
    pytest.fail(f'jupyter lab did not answer {url} within {timeout}s:\n{log.read_text()[-3000:]}')


def kernel_pids(runtime_dir: Path) -> list[int]:
    "Kernels started by our server: their command line names a connection file in our private runtime dir."
    pids = []
    for d in Path('/proc').glob('[0-9]*'):
        try: cmd = (d / 'cmdline').read_bytes().decode(errors='replace')
        except OSError: continue
        if str(runtime_dir) in cmd and 'kernel' in cmd: pids.append(int(d.name))
    return pids


def stop_server(proc, base: str, token: str, runtime_dir: Path):
    "Ask the server to shut down (it stops its kernels); then SIGTERM / SIGKILL our process group and any kernel left."
    if proc.poll() is None:
        try:
            req = urllib.request.Request(f'{base}/api/shutdown', method='POST', headers={'Authorization': f'token {token}'})
            urllib.request.urlopen(req, timeout=10).close()
            proc.wait(timeout=20)
        except Exception: pass
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None: break
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: break
        try: proc.wait(timeout=wait)
        except subprocess.TimeoutExpired: pass
    for pid in kernel_pids(runtime_dir):  # kernels run in their own sessions, outside our process group
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass


# Every cell in the DOM (JupyterLab 4 otherwise renders only the cells in view), and no news pop-up
LAB_SETTINGS = {'@jupyterlab/notebook-extension/tracker': {'windowingMode': 'none'},
                '@jupyterlab/apputils-extension/notification': {'fetchNews': 'false'}}

# JavaScript helpers, run in the page
PROMPTS = "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim())"
STATUS = "() => document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status')"
IMG_SHA = """async (img) => { const b = await (await fetch(img.src)).arrayBuffer();
    const h = await crypto.subtle.digest('SHA-256', b); return [...new Uint8Array(h)].map(x => x.toString(16).padStart(2, '0')).join(''); }"""
ERRORS = """() => [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText)
    .filter(t => /Traceback|Error displaying widget/.test(t)).map(t => t.slice(0, 800))"""


@pytest.mark.timeout(420)
def test_explorers_in_jupyterlab(tmp_path):
    sync_api = pytest.importorskip('playwright.sync_api', reason='playwright is not installed (pip install playwright)')
    chromium = find_chromium()
    if chromium is None:
        pytest.skip('no chromium binary (install Debian\'s with .ci/install-browser.sh, or set TAU_CHROMIUM)')
    jlab = tool('jupyter-lab')
    assert jlab, 'jupyter-lab not found next to the interpreter'

    nbs = tmp_path / 'nbs'; nbs.mkdir()
    default_path_copy(ROOT / 'nbs' / NB, nbs / NB)
    shutil.copy(ROOT / 'settings.ini', tmp_path)  # a course checkout to the kernel: `shipped_model()` finds results/ from nbs/
    (tmp_path / 'results').symlink_to(ROOT / 'results', target_is_directory=True)
    (tmp_path / 'tests').symlink_to(ROOT / 'tests', target_is_directory=True)  # the toys the chapter's tests import
    runtime = tmp_path / 'runtime'
    env = {k: v for k, v in os.environ.items() if k not in ('MPLBACKEND', 'JUPYTER_TOKEN')}  # kernels: inline figures
    env.update(TAU_COURSE_DATA=str(ROOT / 'data'), JUPYTER_RUNTIME_DIR=str(runtime),
               JUPYTER_CONFIG_DIR=str(tmp_path / 'config'), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / 'settings'),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / 'workspaces'), IPYTHONDIR=str(tmp_path / 'ipython'))
    for ext, settings in LAB_SETTINGS.items():  # a private settings dir: the user's own settings are not touched
        (tmp_path / 'settings' / ext).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'settings' / f'{ext}.jupyterlab-settings').write_text(json.dumps(settings))
    port, token = free_port(), secrets.token_hex(16)
    base = f'http://127.0.0.1:{port}'
    log = tmp_path / 'jupyter.log'
    RUNS.mkdir(exist_ok=True)
    with open(log, 'w') as logf:
        proc = subprocess.Popen([jlab, '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
                                 '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}',
                                 f'--ServerApp.root_dir={nbs}', '--LabApp.news_url=None',
                                 '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                                 '--ServerApp.terminals_enabled=False', *(['--allow-root'] if os.geteuid() == 0 else [])],
                                cwd=nbs, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_server(f'{base}/api/status?token={token}', proc, log)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=['--no-sandbox'])
            try: run_and_check(browser.new_page(viewport={'width': 1400, 'height': 1000}), base, token)
            finally: browser.close()
    finally:
        stop_server(proc, base, token, runtime)
    assert proc.poll() is not None, 'jupyter lab is still running'


def wait_until(page, fn, what: str, timeout: float, interval: float = 0.5):
    "Poll `fn()` until it is truthy; on timeout save a screenshot and fail saying `what` did not happen."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if (v := fn()): return v
        page.wait_for_timeout(interval * 1000)
    page.screenshot(path=str(RUNS / 'explorers_failed.png'))
    pytest.fail(f'timed out after {timeout}s waiting for {what} (screenshot: runs/explorers_failed.png)')


def run_and_check(page, base: str, token: str):
    page.goto(f'{base}/lab/tree/{NB}?token={token}', timeout=90_000)
    page.wait_for_selector('.jp-Notebook .jp-CodeCell', timeout=90_000)
    def kernel_ready():  # the server's view (a connected, idle kernel) and the page's (indicator idle)
        with urllib.request.urlopen(f'{base}/api/kernels?token={token}', timeout=10) as r: ks = json.load(r)
        return (len(ks) == 1 and ks[0]['execution_state'] == 'idle' and ks[0]['connections'] > 0
                and page.evaluate(STATUS) == 'idle')
    wait_until(page, kernel_ready, 'the kernel to start (idle and connected)', 90)
    page.wait_for_timeout(1000)
    wait_until(page, lambda: len(page.evaluate(PROMPTS)) > 20, "the chapter's code cells to render", 60)

    # Run -> Run All Cells, from the menu bar, as a reader would
    page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(r'^Run$')).click()
    page.locator('.lm-Menu-itemLabel', has_text=re.compile(r'^Run All Cells$')).click()
    def done():
        if (errors := page.evaluate(ERRORS)):  # an error stops Run All: fail now, with the traceback
            page.screenshot(path=str(RUNS / 'explorers_failed.png')); pytest.fail('a cell errored:\n' + '\n'.join(errors))
        return all(re.fullmatch(r'\[\d+\]:', t) for t in page.evaluate(PROMPTS)) and page.evaluate(STATUS) == 'idle'
    wait_until(page, done, 'every cell to run (prompts [n]: and the kernel idle)', 240)

    scrub = page.locator('.tau-scrubber').first
    scrub.scroll_into_view_if_needed()
    img = scrub.locator('img').first
    img.wait_for(state='visible', timeout=30_000)
    wait_until(page, lambda: img.evaluate('i => i.complete && i.naturalWidth > 0'), 'the scrubber image to load', 30)
    src0, sha0 = img.get_attribute('src'), img.evaluate(IMG_SHA)
    sliders = scrub.locator('.widget-slider')
    t_slider = sliders.nth(2)  # sequence, horizon, t
    readout0 = t_slider.locator('.widget-readout').inner_text()
    handle = t_slider.locator('.noUi-handle').first
    handle.focus(); handle.press('ArrowRight')  # keyboard on the focused slider handle: t -> t + 1
    wait_until(page, lambda: img.get_attribute('src') != src0, 'the scrubber image to change after moving t', 60)
    wait_until(page, lambda: img.evaluate('i => i.complete && i.naturalWidth > 0'), 'the new image to load', 30)
    readout1 = t_slider.locator('.widget-readout').inner_text()
    assert int(readout1) == int(readout0) + 1, (readout0, readout1)
    assert img.evaluate(IMG_SHA) != sha0, 'the image URL changed but its pixels did not'
    page.wait_for_timeout(500)
    page.screenshot(path=str(RUNS / 'explorers.png'))
    for css in ('tau-scrubber', 'tau-attention', 'tau-ddr', 'tau-dashboard'):
        box = page.locator(f'.{css}').first
        box.scroll_into_view_if_needed()
        box.screenshot(path=str(RUNS / f'explorers_{css[4:]}.png'))
    assert page.evaluate(ERRORS) == [], page.evaluate(ERRORS)
    check_showcase(page, scrub)


SHOWCASE_TEST = ROOT / 'results' / 'mmnist_cpu_showcase_test.json'  # `tau-course eval` of the shipped model, all 10,000


def check_showcase(page, scrub):
    """The explorers show the trained showcase model: its error as recorded, block 0's dynamical attention alive.

    Issue 17 asks for block 0's DA weights to vary (std >= 0.05); a dead DA is 0.5 everywhere (std 0). The first
    showcase run lost block 0's DA at its peak learning rate; the shipped recipe trains DA at a quarter of it and keeps
    block 0's alive, though block 3's died in that run (chapter 18a), so only block 0 is held to the bound."""
    recorded = json.loads(SHOWCASE_TEST.read_text())['metrics']['mse']
    text = scrub.locator('.widget-html').first.inner_text()
    shown = re.search(r'frames 1–10: ([\d.]+)', text)
    assert shown, f'no first-pass MSE in the scrubber caption: {text!r}'
    assert float(shown[1]) <= 1.2 * recorded, (text, recorded)
    att = page.locator('.tau-attention').first
    att.scroll_into_view_if_needed()
    text = att.locator('.widget-html').first.inner_text()
    stds = [float(v) for v in re.findall(r'block \d+: std ([\d.]+)', text)]
    assert len(stds) == 4, f'expected the DA spread of the 4 blocks in the attention inspector caption: {text!r}'
    assert stds[0] >= 0.05, f"block 0's DA weights hardly vary (std < 0.05; 0 when the DA is dead): {text}"
