"""Builds the fuzz targets' seed corpus from the project's own pipelines (and, when it exists,
../shared/fixtures/kfp): whole packages for spec_parser, the CEL conditions and selectors and
the container commands they contain for cel and placeholders, and filters and page tokens of
the kinds the API tests use for list_query.

    python fuzz/seed_corpus.py              # writes fuzz/corpus/<target>/
    python fuzz/seed_corpus.py --out DIR    # writes DIR/<target>/ (fuzz/run.sh)

The shared folder is looked for beside the repository, or at WEIR_SHARED_DIR; when it is missing
the corpus is made without it, and a line says so.
"""
import argparse
import base64
import hashlib
import json
import os
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / 'fuzz' / 'corpus'
SHARED = pathlib.Path(os.environ.get('WEIR_SHARED_DIR') or ROOT.parent / 'shared')
SEP = '\x1f'


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = OUT / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def walk(value, found):
    """Collects CEL expressions and container command lines anywhere in a spec."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == 'condition' and isinstance(item, str):
                found['cel'].add(item)
            if key in ('parameterExpressionSelector', 'itemsSelector') and isinstance(item, str):
                found['cel'].add(item)
            if key in ('command', 'args') and isinstance(item, list):
                found['placeholders'].add(SEP.join(str(x) for x in item))
            walk(item, found)
    elif isinstance(value, list):
        for item in value:
            walk(item, found)


def main():
    global OUT
    parser = argparse.ArgumentParser(description='Builds the fuzz targets\' seed corpus.')
    parser.add_argument('--out', type=pathlib.Path, default=OUT, help='corpus folder (default fuzz/corpus)')
    OUT = parser.parse_args().out.resolve()
    packages = sorted((ROOT / 'crates').rglob('tests/pipelines/*.yaml'))
    shared = SHARED / 'fixtures' / 'kfp'
    if shared.is_dir():
        packages += sorted(shared.rglob('*.yaml'))
    else:
        print(f'seed_corpus: no shared fixtures at {shared}; seeds from the project\'s own pipelines only',
              file=sys.stderr)
    found = {'cel': set(), 'placeholders': set()}
    for path in packages:
        raw = path.read_bytes()
        put('spec_parser', b'\x00' + raw)   # first byte 0: read as p.yaml
        try:
            docs = list(yaml.safe_load_all(raw))
        except yaml.YAMLError:
            continue
        if docs and isinstance(docs[0], dict):
            put('spec_parser', b'\x01' + json.dumps(docs[0]).encode())  # as p.json
        walk(docs, found)
    for expression in found['cel']:
        put('cel', expression)
        put('cel', expression + SEP + '{"a": [1, 2, 3], "b": "x"}')
    for line in found['placeholders']:
        put('placeholders', line)
    filters = [
        {'predicates': [{'key': 'display_name', 'operation': 'EQUALS', 'string_value': 'x'}]},
        {'predicates': [{'key': 'created_at', 'operation': 'GREATER_THAN', 'timestamp_value': '2024-01-01T00:00:00Z'}]},
        {'predicates': [{'key': 'state', 'op': 'IN', 'stringValues': {'values': ['FAILED', 'SUCCEEDED']}}]},
        {'predicates': [{'key': 'name', 'operation': 9, 'string_value': 'ab'}]},
        {'predicates': [{'key': 'storage_state', 'operation': 'NOT_EQUALS', 'string_value': 'ARCHIVED'}]},
    ]
    for f in filters:
        text = json.dumps(f)
        token = base64.urlsafe_b64encode(json.dumps({'v': 5, 'i': 'id', 'f': text, 's': ''}).encode()).decode().rstrip('=')
        put('list_query', text + SEP + token)
        put('list_query', text)
    print({p.name: len(list(p.iterdir())) for p in sorted(OUT.iterdir()) if p.is_dir()})


if __name__ == '__main__':
    main()
