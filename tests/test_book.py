"""End-to-end test of the companion book in a real browser.

Builds the book with the ``smoke`` profile in a temporary copy of the book sources (so a
developer's ``_build/html`` is left alone), serves it on 127.0.0.1 and opens it in headless
Debian Chromium through chromedriver (selenium). Checks:

* all six chapters are in the navigation and render;
* no request fails and none leaves 127.0.0.1 (Chrome's network log, every page visited);
* MathJax rendered the equations (``mjx-container`` elements, no ``merror``);
* the genotype explorer works without a kernel: choosing another layer changes the cell shown;
* every page, at 1400 px: no SEVERE browser console entry, no table wider than the text column,
  no literal ``$...$`` math.

``HINAS_BOOK_HTML=/path/to/_build/html`` skips the build and tests that HTML instead.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
CHAPTERS = [
    "01_inner_search_space",
    "02_outer_search_space_cell_sharing",
    "03_residual_heads",
    "04_search",
    "05_ablations",
    "06_sota_comparison",
]

pytestmark = [pytest.mark.slow]


def _need_browser():
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("Debian chromium and chromium-driver are needed (make setup-system)")


@pytest.fixture(scope="module")
def book_html(tmp_path_factory) -> Path:
    """Build the smoke book in a temporary copy of the sources; return its _build/html."""
    if os.environ.get("HINAS_BOOK_HTML"):
        return Path(os.environ["HINAS_BOOK_HTML"]).resolve()
    _need_browser()
    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (root / "book").mkdir()
    for item in (REPO / "book").iterdir():
        if item.name in ("generated", "node_modules", "_build"):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, root / "book" / item.name)
    if (REPO / "results").exists():
        (root / "results").symlink_to(REPO / "results")
    modules = REPO / "book" / "node_modules"
    if not modules.exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=REPO / "book",
                       check=True)
    (root / "book" / "node_modules").symlink_to(modules)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from hinas.book.build import build, BookError\n"
         "try:\n build('smoke', root=Path(sys.argv[1]), runs_root=sys.argv[1] + '/runs')\n"
         "except BookError as e:\n print(e, file=sys.stderr); sys.exit(1)",
         str(root)],
        capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        pytest.fail(f"smoke book build failed after {elapsed:.0f} s:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    print(f"smoke book built in {elapsed:.1f} s")
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def server(book_html):
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    httpd = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        import sys as _sys

        if isinstance(_sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the browser dropped a connection it no longer needed
        super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def browser(server):
    _need_browser()
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-default-apps", "--disable-extensions",
                "--disable-domain-reliability", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _network_events(driver):
    """(requests, failures) from Chrome's performance log since the last call."""
    requests, failures, urls = [], [], {}
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            requests.append(url)
        elif method == "Network.loadingFailed":
            if params.get("canceled"):
                continue
            failures.append(f"{urls.get(params['requestId'], params['requestId'])}: {params.get('errorText')}")
        elif method == "Network.responseReceived":
            status = params["response"]["status"]
            if status >= 400:
                failures.append(f"{params['response']['url']}: HTTP {status}")
    return requests, failures


def _wait(driver, condition, timeout=60, what="condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except Exception:
        pytest.fail(f"timed out after {timeout} s waiting for {what} on {driver.current_url}")


def _visit(driver, url):
    driver.get(url)
    _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete",
          what="the page to load")


def _assert_local_network(driver, server):
    requests, failures = _network_events(driver)
    host = urlparse(server).netloc
    foreign = [u for u in requests
               if urlparse(u).scheme not in ("data", "blob", "about", "chrome", "chrome-extension")
               and urlparse(u).netloc != host]
    assert not foreign, f"requests left 127.0.0.1: {foreign}"
    assert not failures, f"failed requests: {failures}"
    return requests


def test_chapters_present_and_local(browser, server):
    _visit(browser, server + "/index.html")
    _wait(browser, lambda d: "/book/intro.html" in d.current_url, what="the redirect to the intro")
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('nav a, .bd-sidebar a')).map(a => a.href)")
    for chapter in CHAPTERS:
        assert any(chapter in href for href in links), f"chapter {chapter} is not in the navigation"
    _assert_local_network(browser, server)
    for chapter in CHAPTERS:
        _visit(browser, f"{server}/book/generated/{chapter}.html")
        title = browser.execute_script("const h = document.querySelector('h1'); return h && h.textContent")
        assert title and title.startswith(f"{int(chapter[:2])}."), f"{chapter}: no chapter title (h1 = {title!r})"
        time.sleep(0.5)  # let deferred scripts (MathJax, widgets) issue their requests
        _assert_local_network(browser, server)


def test_equations_rendered(browser, server):
    _visit(browser, f"{server}/book/generated/{CHAPTERS[0]}.html")
    n = _wait(browser, lambda d: d.execute_script(
        "return document.querySelectorAll('mjx-container').length") or None,
        what="MathJax to typeset the equations")
    assert n >= 2
    errors = browser.execute_script("return document.querySelectorAll('mjx-merror, .MathJax_Error').length")
    assert errors == 0, "MathJax reported errors in the equations"
    _assert_local_network(browser, server)


def _visible_cell(driver):
    return driver.execute_script("""
        const cells = Array.from(document.querySelectorAll('.hinas-explorer-cell'))
            .filter(c => c.offsetParent !== null && c.getBoundingClientRect().height > 0);
        return cells.map(c => [c.dataset.key, c.dataset.layer, c.querySelector('svg') ? c.querySelector('svg').outerHTML : '']);
    """)


def test_explorer_switches_layer(browser, server):
    from selenium.webdriver.common.by import By

    _visit(browser, f"{server}/book/generated/{CHAPTERS[0]}.html")
    _wait(browser, lambda d: len(_visible_cell(d)) == 1, what="the explorer widget to render")
    (key, layer, svg), = _visible_cell(browser)
    assert layer == "0" and "<svg" in svg
    buttons = [b for b in browser.find_elements(By.CSS_SELECTOR, ".hinas-explorer-layer button")
               if b.is_displayed()]
    target = next(b for b in buttons if b.text.strip() == "layer 1")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    target.click()
    _wait(browser, lambda d: _visible_cell(d) and _visible_cell(d)[0][1] == "1", timeout=20,
          what="the explorer to show layer 1")
    (key2, layer2, svg2), = _visible_cell(browser)
    assert key2 == key and svg2 != svg, "the cell drawing did not change with the layer"
    assert "layer 1" in svg2
    # another run: the dropdown switches the whole view, client-side too
    from selenium.webdriver.support.ui import Select

    run_select = Select(browser.find_element(By.CSS_SELECTOR, ".hinas-explorer-run select"))
    labels = [o.text for o in run_select.options]
    assert len(labels) >= 2
    run_select.select_by_index(len(labels) - 1)
    _wait(browser, lambda d: _visible_cell(d) and _visible_cell(d)[0][0].startswith(labels[-1] + "/"),
          timeout=20, what=f"the explorer to show run {labels[-1]!r}")
    _assert_local_network(browser, server)


# ------------------------------------------------------------------------------ hygiene

MACHINE_PATHS = ("/work/", "/tmp/", "/home/", "/root/", "/usr/", "file://")


def _page_text(driver):
    return driver.execute_script(
        "const m = document.querySelector('main') || document.body; return m.textContent")


def _table_cells(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('main table td, main table th')).map(c => c.textContent.trim())")


def test_pages_hygiene(browser, server):
    """What a reader must never see: machine paths, NaN/None cells, pandas row numbers,
    citations of files outside the book, the parameters cell (hidden by its tag)."""
    for page in ["book/intro"] + [f"book/generated/{c}" for c in CHAPTERS]:
        _visit(browser, f"{server}/{page}.html")
        text = _page_text(browser)
        for bad in MACHINE_PATHS:
            assert bad not in text, f"{page}: machine path {bad!r} in the page: " \
                f"...{text[max(0, text.find(bad) - 80):text.find(bad) + 80]}..."
        assert "REFERENCE.md" not in text, f"{page}: cites REFERENCE.md, a file outside the book"
        cells = _table_cells(browser)
        bad_cells = [c for c in cells if c in ("NaN", "nan", "None", "NaT", "<NA>")]
        assert not bad_cells, f"{page}: table cells {bad_cells[:5]}"
        row_numbers = browser.execute_script("""
            return Array.from(document.querySelectorAll('main table tbody th'))
                .map(th => th.textContent.trim()).filter(t => /^\\d+$/.test(t));""")
        assert not row_numbers, f"{page}: pandas row indices {row_numbers[:5]} shown"
        if page.startswith("book/generated/"):
            n_params = browser.execute_script("return document.querySelectorAll('.tag_parameters').length")
            injected = browser.execute_script("return document.querySelectorAll('.tag_injected-parameters').length")
            # the parameters cell stays in the notebook for papermill, but is not shown
            assert n_params == 0 and injected == 0, f"{page}: {n_params} parameters cell(s), {injected} injected shown"
            assert "Sec. 3.4" not in text, f"{page}: the paper has no Sec. 3.4"
    _assert_local_network(browser, server)


# what a page has finished doing: MathJax's first typesetting, and every widget view rendered
_SETTLED = """
    const done = arguments[arguments.length - 1];
    const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
    const mj = window.MathJax, typeset = mj && mj.startup && mj.startup.promise;
    const widgets = () => views === 0 || document.querySelectorAll('.widget-subarea').length >= views;
    const wait = () => widgets() ? done(true) : setTimeout(wait, 100);
    (typeset ? typeset.then(wait, wait) : wait());"""

# tables whose box runs past the content box of the article (the text column)
_WIDE_TABLES = """
    const col = document.querySelector('article.bd-article') || document.querySelector('main');
    const style = getComputedStyle(col), box = col.getBoundingClientRect();
    const left = box.left + parseFloat(style.paddingLeft), right = box.right - parseFloat(style.paddingRight);
    return Array.from(col.querySelectorAll('table')).filter(t => t.getClientRects().length).map(t => {
        const r = t.getBoundingClientRect();
        const head = Array.from(t.querySelectorAll('th')).slice(0, 4).map(th => th.textContent.trim());
        return [r.left < left - 1 || r.right > right + 1, `${t.id || t.className || 'table'} `
                + `(${Math.round(r.width)} px in a ${Math.round(right - left)} px column; ${head.join(' | ')})`];
    }).filter(([wide]) => wide).map(([, what]) => what);"""

# literal TeX in the text a reader sees: $...$, or \\(...\\) that MathJax left alone (code excluded)
_RAW_MATH = r"""
    const root = document.querySelector('main') || document.body;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode(node) {
        const el = node.parentElement;
        if (!el || !el.getClientRects().length) return NodeFilter.FILTER_REJECT;  // not rendered
        if (el.closest('script, style, code, textarea, mjx-container, .cell_input')
            || (el.closest('pre') && !el.closest('.cell_output'))) return NodeFilter.FILTER_REJECT;
        return NodeFilter.FILTER_ACCEPT;
    }});
    let text = '';
    while (walker.nextNode()) text += walker.currentNode.data;
    return text.match(/\$[^$\n]{1,60}\$|\\\([^\n]{1,60}?\\\)/g) || [];"""


def test_pages_clean_in_the_browser(browser, server):
    """Every page, at 1400 px, once MathJax and the widgets are done: no SEVERE entry in the
    browser console (script errors, failed loads), no table wider than the text column, no
    literal $...$ math. Storage is cleared first, so a first visit's messages count too."""
    from selenium.common.exceptions import TimeoutException

    _visit(browser, f"{server}/book/intro.html")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    browser.get_log("browser")  # only what the visits below log
    browser.set_script_timeout(60)
    problems = []
    for page in ["book/intro"] + [f"book/generated/{c}" for c in CHAPTERS]:
        _visit(browser, f"{server}/{page}.html")
        try:
            browser.execute_async_script(_SETTLED)
        except TimeoutException:
            problems.append(f"{page}: MathJax or the widgets did not finish within 60 s")
        time.sleep(0.5)  # let what the widgets and MathJax started finish logging
        severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        problems += [f"{page}: console: {m[:400]}" for m in severe]
        problems += [f"{page}: table wider than the text column: {t}"
                     for t in browser.execute_script(_WIDE_TABLES)]
        problems += [f"{page}: unrendered math {m!r}" for m in browser.execute_script(_RAW_MATH)]
    assert not problems, "\n".join(problems)


def test_intro_links_paper_and_glance(browser, server):
    _visit(browser, f"{server}/book/intro.html")
    hrefs = browser.execute_script("return Array.from(document.querySelectorAll('main a')).map(a => a.href)")
    assert any("doi.org/10.1007/s11263-021-01537-w" in h for h in hrefs), "no link to the IJCV paper (DOI)"
    assert any("arxiv.org/abs/2012.13212" in h for h in hrefs), "no link to the arXiv preprint"
    cells = _table_cells(browser)
    assert any("noisy input" in c for c in cells), "the results-at-a-glance table lacks the noisy input"
    assert any(c.endswith(" dB") and c[0].isdigit() for c in cells), "no measured PSNR at a glance"
    # what is shown and what is not: every claim of the paper with a verdict of the stated vocabulary
    from hinas.book.claims import CLAIMS, VERDICTS

    text = _page_text(browser)
    assert "Shown and not shown" in text and text.index("Shown and not shown") < text.index("Results at a glance")
    for _, claim, _ in CLAIMS:
        assert claim in cells, f"the claims table lacks {claim!r}"
    tables = browser.execute_script(
        "return Array.from(document.querySelectorAll('main table')).map(t => ({head: Array.from(t.querySelectorAll("
        "'thead th')).map(c => c.textContent.trim()), rows: Array.from(t.querySelectorAll('tbody tr')).map(r => "
        "Array.from(r.cells).map(c => c.textContent.trim()))}))")
    claims = next(t for t in tables if "the paper claims" in t["head"])
    assert claims["rows"] and all(r[claims["head"].index("verdict")] in VERDICTS for r in claims["rows"])
    # no HiNAS number at a glance below the noisy input: a run that diverged or did not learn is named
    glance = next(t for t in tables if "measured here" in t["head"] and "published" in t["head"])
    what, measured = glance["head"].index("what"), glance["head"].index("measured here")
    values = {r[what]: r[measured] for r in glance["rows"]}
    floor = [float(v.split()[0]) for k, v in values.items() if k.startswith("noisy input") and v[:1].isdigit()]
    for name, v in values.items():
        if name.startswith("HiNAS") and v[:1].isdigit() and floor:
            assert float(v.split()[0]) > min(floor), f"{name}: {v} below the noisy input"


def test_sota_has_noisy_input_and_verdict(browser, server):
    _visit(browser, f"{server}/book/generated/06_sota_comparison.html")
    first_cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('main table tbody tr')).map(r => r.cells[0] && r.cells[0].textContent.trim())")
    assert any(c and c.startswith("noisy input") for c in first_cells), "chapter 6 has no noisy-input row"
    text = _page_text(browser)
    assert "Learning." in text and "noisy input scores" in text, "chapter 6 does not compare with the noisy input"


def test_notebook_runs_from_any_folder(tmp_path):
    """papermill straight on a chapter, from another folder, with only the profile given:
    runs_root and device resolve through hinas.book (the repository's runs/, the profile's device)."""
    import nbformat
    import papermill as pm

    out = tmp_path / "03.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "03_residual_heads.ipynb"), str(out), parameters={"profile": "smoke"},
                        cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_committed_gpu_results_come_first(browser, server):
    """Chapters 4-6 show the GPU campaign results committed under results/ (or say there are none),
    and the intro's glance table carries them, marked as committed."""
    from hinas.book import committed as cm

    folders = cm.campaign_folders(REPO)
    _visit(browser, f"{server}/book/generated/06_sota_comparison.html")
    text = _page_text(browser)
    if not folders:
        assert "No paper-plan results committed yet" in text
        return
    searches, evals = cm.campaign_rows(REPO, "search"), cm.campaign_rows(REPO, "eval")
    for sigma in sorted(evals[evals.task == "denoise"].sigma.unique()) if len(evals) else []:
        assert f"BSD200, sigma {sigma:g}" in text and "Against the paper" in text
        cells = _table_cells(browser)
        assert "HiNAS (published, Table 10)" in cells
        if cm.unsearched_networks(REPO):  # a network of an unsearched genotype is never called searched
            assert cm.UNSEARCHED in cells
        assert "Paired on the same images" in text
    # denoised pictures on every build: the paper's BSD200 images, else the embedded photos, and the
    # computed line saying which were shown and why
    pictures = browser.execute_script("return document.querySelectorAll('main img').length")
    assert pictures >= 3 and "Shown:" in text
    # the protocol ladders: each difference between the protocols measured, and the gaps to the paper
    # split into measured and missing parts (or the line saying no ladder is committed)
    if list((REPO / "results" / "protocol").glob("ladder_*.json")):
        assert "fresh noise per patch" in text and "noisy input clipped to [0, 1]" in text
        assert "not explained by any measurement here" in text and "needs the full-length search" in text
    else:
        assert "no protocol ladder" in text
    _visit(browser, f"{server}/book/generated/04_search.html")
    text = _page_text(browser)
    assert all(item in text for item in searches.item), "chapter 4 lacks a committed search"
    moves = cm.search_movements(REPO)
    if any(not m["moved"] for m in moves.values()):
        assert "not searched" in text, "chapter 4 does not say the committed search did not move"
    _visit(browser, f"{server}/book/intro.html")
    if len(evals):
        assert any("paper plan, committed" in c for c in _table_cells(browser)), "the glance lacks the plan's rows"
