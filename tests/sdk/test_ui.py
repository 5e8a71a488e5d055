"""The web UI in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

One weir on SQLite + a folder serves the module (the UI reads the same services as the API,
which the rest of the suite checks on every backend). Screenshots of the main pages are
written to docs/ui/ as the tests pass through them.
"""
import re
import shutil
import time
from pathlib import Path

import kfp
import pytest
import requests
from kfp import compiler
from playwright.sync_api import Page, expect, sync_playwright

import ui_pipelines
from conftest import REPO_ROOT, start_weir, stop_process

SCREENSHOTS = REPO_ROOT / 'docs' / 'ui'
RUN_TIMEOUT_S = 180


@pytest.fixture(scope='module')
def server(weir_bin, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp('weir-ui')
    server = start_weir(weir_bin, 'sqlite', data_dir, f'sqlite://{data_dir}/weir.db',
                        f'file://{data_dir}/artifacts', {})
    yield server
    stop_process(server.process)


@pytest.fixture(scope='module')
def client(server) -> kfp.Client:
    return kfp.Client(host=server.url)


@pytest.fixture(scope='module')
def browser():
    executable = shutil.which('chromium')
    assert executable, 'the browser tests need Debian\'s chromium (.ci/run installs it)'
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=['--no-sandbox'])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server) -> Page:
    context = browser.new_context(base_url=server.url, viewport={'width': 1400, 'height': 950})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f'script errors on the page: {errors}'


@pytest.fixture(scope='module')
def demo_package(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('ui-pipelines') / 'demo.yaml'
    compiler.Compiler().compile(ui_pipelines.demo_pipeline, str(path))
    return str(path)


@pytest.fixture(scope='module')
def demo_pipeline(client, demo_package):
    return client.upload_pipeline(demo_package, pipeline_name='weir-ui-demo <b>bold</b>')


@pytest.fixture(scope='module')
def finished_demo_run(client, demo_package):
    run = client.create_run_from_pipeline_package(demo_package, arguments={'a': 4},
                                                  run_name='demo run')
    client.wait_for_run_completion(run.run_id, RUN_TIMEOUT_S)
    return run.run_id


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f'{name}.png'), full_page=False)


def test_the_link_kfp_client_prints_opens_the_run_and_its_graph_completes(client, page, capsys):
    run = client.create_run_from_pipeline_func(ui_pipelines.demo_pipeline, arguments={'a': 2},
                                               run_name='printed link run')
    printed = capsys.readouterr().out
    match = re.search(r'Run details: (\S+)', printed)
    assert match, printed
    link = match.group(1)
    assert link.endswith(f'/#/runs/details/{run.run_id}')
    page.goto(link)
    expect(page).to_have_url(re.compile(f'/runs/{run.run_id}$'))
    # Live over SSE: the page was opened while the run was under way and ends complete.
    expect(page.locator('#live .stateline .state')).to_have_text('SUCCEEDED', timeout=RUN_TIMEOUT_S * 1000)
    graph = page.locator('#live svg.graph')
    expect(graph.locator('g.node')).to_have_count(3)
    expect(graph.locator('g.node.succeeded')).to_have_count(3)
    expect(graph.locator('g.node.loop .note')).to_contain_text('3 iterations')
    shot(page, 'run-details')


def test_a_node_opens_its_panel_with_the_log(client, page, finished_demo_run):
    page.goto(f'/runs/{finished_demo_run}')
    page.locator('svg.graph a[aria-label^="add "]').first.click()
    panel = page.locator('#node-panel')
    expect(panel.locator('h2')).to_have_text('add')
    expect(panel.locator('pre[aria-label="Step log"]')).to_contain_text('adding 4 and 2.5')
    expect(panel).to_contain_text('6.5')
    shot(page, 'node-panel')
    # The loop opens on its iterations, an iteration on its own graph.
    page.goto(f'/runs/{finished_demo_run}')
    page.locator('svg.graph g.node.loop').click()
    expect(page.locator('table[aria-label="Iterations"] tbody tr')).to_have_count(3)
    page.locator('table[aria-label="Iterations"] a').first.click()
    expect(page.locator('svg.graph g.node')).to_have_count(1)


def test_keyboard_reaches_a_node(page, finished_demo_run):
    page.goto(f'/runs/{finished_demo_run}')
    node = page.locator('svg.graph a[aria-label^="evaluate "]')
    node.focus()
    page.keyboard.press('Enter')
    expect(page.locator('#node-panel h2')).to_have_text('evaluate')


def test_a_failed_run_shows_its_failing_step_first(client, page):
    run = client.create_run_from_pipeline_func(ui_pipelines.failing_pipeline,
                                               arguments={'message': 'rows are missing'},
                                               run_name='failing run')
    client.wait_for_run_completion(run.run_id, RUN_TIMEOUT_S)
    page.goto(f'/runs/{run.run_id}')
    notice = page.locator('.notice').first
    expect(notice).to_contain_text('Step explode failed')
    notice.locator('a').click()
    expect(page.locator('#node-panel .error')).to_be_visible()
    expect(page.locator('#node-panel pre[aria-label="Step log"]')).to_contain_text('rows are missing')
    shot(page, 'failed-run')


def test_artifacts_render_and_html_cannot_reach_weir(client, page, finished_demo_run):
    page.goto(f'/runs/{finished_demo_run}')
    page.locator('svg.graph a[aria-label^="evaluate "]').click()
    panel = page.locator('#node-panel')
    # Metrics as a table.
    panel.locator('a', has_text='metrics (system.Metrics)').click()
    expect(page.locator('table[aria-label="Metrics"]')).to_contain_text('accuracy')
    expect(page.locator('table[aria-label="Metrics"]')).to_contain_text('0.65')
    page.go_back()
    # Classification metrics: a confusion matrix and a ROC curve.
    page.locator('#node-panel a', has_text='curves (system.ClassificationMetrics)').click()
    expect(page.locator('table[aria-label="Confusion matrix"]')).to_contain_text('dog')
    expect(page.locator('.chart svg')).to_be_visible()
    shot(page, 'artifact-classification')
    page.go_back()
    # Markdown rendered, its script shown as text and never run.
    page.locator('#node-panel a', has_text='notes (system.Markdown)').click()
    expect(page.locator('.md h1')).to_have_text('Notes')
    assert page.evaluate('window.__md') is None
    page.go_back()
    # HTML in a sandboxed frame: its script runs, but neither weir's cookies nor its page
    # are within reach.
    page.context.add_cookies([{'name': 'visible', 'value': 'to-weir-pages', 'url': page.url}])
    page.locator('#node-panel a', has_text='page (system.HTML)').click()
    frame = page.frame_locator('iframe.sandboxed')
    heading = frame.locator('#h')
    expect(heading).to_have_attribute('data-tried', re.compile('parent-'))
    tried = heading.get_attribute('data-tried')
    assert 'to-weir-pages' not in tried and 'weir_csrf' not in tried, tried
    assert 'parent:reached' not in tried, tried
    assert page.title() != 'pwned'


def test_a_run_started_from_the_form_gets_typed_inputs(client, page, demo_pipeline):
    page.goto(f'/runs/new?pipeline={demo_pipeline.pipeline_id}')
    page.fill('#n-name', 'typed from the form')
    page.fill('#in-a', '7')
    page.fill('#in-b', '0.25')
    page.select_option('#in-flag', 'false')
    page.fill('#in-tags', '["p", "q"]')
    shot(page, 'new-run')
    page.click('button:has-text("Start")')
    expect(page).to_have_url(re.compile(r'/runs/[0-9a-f-]{36}$'))
    run_id = page.url.rsplit('/', 1)[1]
    run = client.get_run(run_id)
    assert run.runtime_config.parameters == {'a': 7, 'b': 0.25, 'flag': False, 'tags': ['p', 'q']}
    assert run.pipeline_version_reference.pipeline_id == demo_pipeline.pipeline_id
    client.wait_for_run_completion(run_id, RUN_TIMEOUT_S)
    # A wrong type is refused with the form kept.
    page.goto(f'/runs/new?pipeline={demo_pipeline.pipeline_id}')
    page.fill('#in-tags', '{"not": "a list"}')
    page.click('button:has-text("Start")')
    expect(page.locator('.notice')).to_contain_text('input tags: must be a JSON list')
    expect(page.locator('#in-tags')).to_have_value('{"not": "a list"}')


def test_two_runs_compare_side_by_side(client, page, demo_package, finished_demo_run):
    other = client.create_run_from_pipeline_package(demo_package, arguments={'a': 9},
                                                    run_name='demo run nine')
    client.wait_for_run_completion(other.run_id, RUN_TIMEOUT_S)
    page.goto('/runs')
    page.check(f'input[name="ids"][value="{finished_demo_run}"]')
    page.check(f'input[name="ids"][value="{other.run_id}"]')
    shot(page, 'runs')
    page.click('button:has-text("Compare selected")')
    expect(page.locator('h1')).to_have_text('Compare 2 runs')
    differing = page.locator('tbody[aria-label="Parameters compared"] tr.diff')
    expect(differing).to_have_count(1)
    expect(differing).to_contain_text('a')
    expect(page.locator('tbody[aria-label="Metrics compared"] tr.diff').first).to_contain_text('accuracy')
    expect(page.locator('.chart svg')).to_be_visible()
    shot(page, 'compare')


def test_a_recurring_run_is_created_and_disabled(client, page, demo_pipeline):
    page.goto(f'/runs/new?pipeline={demo_pipeline.pipeline_id}')
    page.fill('#n-name', 'hourly from the form')
    page.check('input[name="kind"][value="recurring"]')
    page.check('input[name="trigger"][value="interval"]')
    page.fill('#n-int', '3600')
    page.fill('#n-conc', '2')
    page.click('button:has-text("Start")')
    expect(page).to_have_url(re.compile(r'/recurring-runs/[0-9a-f-]{36}$'))
    recurring_id = page.url.rsplit('/', 1)[1]
    expect(page.locator('ul[aria-label="Next fire times"] li')).to_have_count(5)
    got = client.get_recurring_run(recurring_id)
    assert got.trigger.periodic_schedule.interval_second == '3600' or \
        int(got.trigger.periodic_schedule.interval_second) == 3600
    assert int(got.max_concurrency) == 2
    shot(page, 'recurring-run')
    page.click('button:has-text("Disable")')
    expect(page.locator('main')).to_contain_text('Disabled')
    assert client.get_recurring_run(recurring_id).status == 'DISABLED'


def test_a_running_steps_log_is_tailed_and_its_run_terminated(client, page):
    run = client.create_run_from_pipeline_func(ui_pipelines.slow_pipeline,
                                               arguments={'seconds': 300}, run_name='slow run')
    deadline = time.monotonic() + 60
    while client.get_run(run.run_id).state != 'RUNNING' and time.monotonic() < deadline:
        time.sleep(0.5)
    page.goto(f'/runs/{run.run_id}')
    expect(page.locator('svg.graph g.node.running')).to_have_count(1, timeout=30_000)
    page.locator('svg.graph a[aria-label^="wait "]').click()
    log = page.locator('#node-panel pre[aria-label="Step log"]')
    expect(page.locator('#log[data-live]')).to_have_count(1)
    first = log.inner_text()
    # New lines arrive over the live stream without a reload.
    last_tick = max(int(n) for n in re.findall(r'tick (\d+)', first)) if 'tick' in first else -1
    expect(log).to_contain_text(f'tick {last_tick + 4}', timeout=30_000)
    assert page.url.endswith(f'node={page.locator("#node-panel code").first.inner_text()}')
    page.on('dialog', lambda dialog: dialog.accept())
    page.click('button:has-text("Terminate")')
    expect(page.locator('#live .stateline .state')).to_have_text(re.compile('CANCEL'), timeout=60_000)
    deadline = time.monotonic() + 60
    while client.get_run(run.run_id).state != 'CANCELED' and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.get_run(run.run_id).state == 'CANCELED'


def test_a_pipeline_is_uploaded_from_the_browser(client, page, demo_package):
    page.goto('/pipelines')
    page.click('summary:has-text("Upload a pipeline")')
    page.set_input_files('#up-file', demo_package)
    page.fill('#up-name', 'uploaded in the browser')
    page.click('button:has-text("Upload")')
    expect(page).to_have_url(re.compile(r'/pipelines/[0-9a-f-]{36}$'))
    pipeline_id = page.url.rsplit('/', 1)[1]
    assert client.get_pipeline(pipeline_id).display_name == 'uploaded in the browser'
    page.locator('table[aria-label="Versions"] a').first.click()
    expect(page.locator('svg.graph g.node')).to_have_count(3)
    expect(page.locator('table[aria-label="Inputs"]')).to_contain_text('NUMBER_INTEGER')
    shot(page, 'pipeline-version')


def test_names_are_shown_not_run(client, page, demo_package):
    run = client.create_run_from_pipeline_package(
        demo_package, run_name='<script>window.__xss = 1</script><img src=x onerror="window.__xss=2">')
    page.goto(f'/runs/{run.run_id}')
    expect(page.locator('h1')).to_have_text('<script>window.__xss = 1</script><img src=x onerror="window.__xss=2">')
    page.goto('/runs')
    assert page.evaluate('window.__xss') is None
    client.wait_for_run_completion(run.run_id, RUN_TIMEOUT_S)


def test_state_changes_need_this_origin_and_its_token(server, finished_demo_run):
    session = requests.Session()
    page = session.get(f'{server.url}/runs/{finished_demo_run}', timeout=10)
    assert 'default-src' in page.headers['Content-Security-Policy']
    assert "script-src 'self'" in page.headers['Content-Security-Policy']
    token = session.cookies.get('weir_csrf')
    assert token and f'value="{token}"' in page.text
    url = f'{server.url}/runs/{finished_demo_run}/actions/archive'
    # No token, a wrong token, or another site's origin: refused, nothing changes.
    assert session.post(url, data={}, timeout=10, allow_redirects=False).status_code == 403
    assert session.post(url, data={'csrf': 'f' * 32}, timeout=10, allow_redirects=False).status_code == 403
    assert session.post(url, data={'csrf': token}, headers={'Origin': 'http://evil.example'},
                        timeout=10, allow_redirects=False).status_code == 403
    state = requests.get(f'{server.url}/apis/v2beta1/runs/{finished_demo_run}', timeout=10).json()
    assert state['storage_state'] == 'AVAILABLE'
    # With both: done.
    done = session.post(url, data={'csrf': token}, timeout=10, allow_redirects=False)
    assert done.status_code == 303
    state = requests.get(f'{server.url}/apis/v2beta1/runs/{finished_demo_run}', timeout=10).json()
    assert state['storage_state'] == 'ARCHIVED'
    session.post(f'{server.url}/runs/{finished_demo_run}/actions/unarchive', data={'csrf': token}, timeout=10)


def test_links_keep_the_proxy_prefix(server, finished_demo_run):
    page = requests.get(f'{server.url}/runs/{finished_demo_run}',
                        headers={'X-Forwarded-Prefix': '/ml/weir'}, timeout=10)
    hrefs = re.findall(r'(?:href|src|action)="([^"#]+)"', page.text)
    local = [h for h in hrefs if h.startswith('/')]
    assert local and all(h.startswith('/ml/weir/') for h in local), local
    bad = requests.get(f'{server.url}/runs', headers={'X-Forwarded-Prefix': '/"><script>'}, timeout=10)
    assert '"><script>' not in bad.text


def test_pages_follow_the_users_theme(browser, server, finished_demo_run):
    for scheme in ['light', 'dark']:
        context = browser.new_context(base_url=server.url, color_scheme=scheme,
                                      viewport={'width': 1400, 'height': 950})
        page = context.new_page()
        page.goto('/experiments')
        background = page.evaluate('getComputedStyle(document.body).backgroundColor')
        assert background == ('rgb(255, 255, 255)' if scheme == 'light' else 'rgb(13, 17, 23)')
        page.goto(f'/runs/{finished_demo_run}')
        if scheme == 'dark':
            shot(page, 'run-details-dark')
        page.goto('/storage')
        expect(page.locator('main')).to_contain_text('both stores agree')
        if scheme == 'light':
            shot(page, 'storage')
        context.close()


def test_every_control_has_a_label(page, demo_pipeline, finished_demo_run):
    for path in ['/runs', f'/runs/new?pipeline={demo_pipeline.pipeline_id}', '/pipelines',
                 '/experiments', f'/runs/{finished_demo_run}']:
        page.goto(path)
        unlabeled = page.evaluate('''() => Array.from(document.querySelectorAll(
            'input:not([type=hidden]), select, textarea')).filter(el => {
              if (el.getAttribute('aria-label')) return false;
              if (el.id && document.querySelector(`label[for="${el.id}"]`)) return false;
              return !el.closest('label');
            }).map(el => el.outerHTML)''')
        assert unlabeled == [], (path, unlabeled)
