"""Opens every page of weir's web UI that a server's runs lead to, and reports any that does not
answer 200: each run, every level of its graph (`?dag=`), every step's panel (`?node=`), every
artifact, pipeline, version and experiment linked from them, and the new-run form cloned from
each run and opened on each pipeline. Run it after `scripts/kfp_suite.py` to see KFP's own
pipelines through the UI:

    .venv/bin/python scripts/ui_crawl.py --host http://127.0.0.1:8888
"""
import argparse
import collections
import json
import re
import sys
import urllib.error
import urllib.request

FOLLOW = re.compile(r'^/(runs|pipelines|experiments|recurring-runs|artifacts)')
SKIP = ('/static/', '/runs/new', '/compare')


def get(host: str, path: str):
    try:
        with urllib.request.urlopen(host + path, timeout=30) as response:
            return response.status, response.read().decode('utf-8', 'replace')
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode('utf-8', 'replace')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--host', default='http://127.0.0.1:8888')
    parser.add_argument('--max-pages', type=int, default=20000)
    args = parser.parse_args()
    api = f'{args.host}/apis/v2beta1'
    runs = json.load(urllib.request.urlopen(f'{api}/runs?page_size=1000')).get('runs', [])
    pipelines = json.load(urllib.request.urlopen(f'{api}/pipelines?page_size=1000')).get('pipelines', [])
    queue = ['/runs', '/runs?archived=true', '/pipelines', '/experiments', '/recurring-runs', '/storage']
    queue += [f'/runs/{r["run_id"]}' for r in runs]
    forms = [f'/runs/new?clone={r["run_id"]}' for r in runs]
    forms += [f'/runs/new?pipeline={p["pipeline_id"]}' for p in pipelines]
    seen, failures, kinds = set(), [], collections.Counter()
    while queue and len(seen) < args.max_pages:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        status, body = get(args.host, path)
        kinds[re.sub(r'[0-9a-f-]{36}|\d+', 'N', path.split('?')[0])] += 1
        if status != 200:
            failures.append((status, path, re.sub(r'\s+', ' ', body)[:300]))
            continue
        for href in re.findall(r'href="(/[^"#]*)"', body):
            href = href.replace('&amp;', '&')
            if FOLLOW.match(href) and not href.startswith(SKIP) and '/log' not in href and '/raw' not in href:
                queue.append(href)
    for path in forms:
        status, body = get(args.host, path)
        kinds['/runs/new'] += 1
        if status != 200:
            failures.append((status, path, re.sub(r'\s+', ' ', body)[:300]))
    for kind, n in sorted(kinds.items()):
        print(f'{n:6} {kind}')
    for status, path, body in failures:
        print(f'FAIL {status} {path}: {body}')
    print(f'{sum(kinds.values())} pages, {len(failures)} failed')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
