"""`weir import kfp` end to end, seen through kfp.Client.

A KFP installation's storage is built here: its `mlpipeline` tables in the shape KFP 2.17's
models give them (backend/src/apiserver/model/*.go), on MariaDB or PostgreSQL, holding rows as
KFP's API server writes them (a pipeline compiled by this SDK, a version whose spec KFP 1.x kept
only in its bucket, experiments, runs, a recurring run), and its bucket on the test S3 server.
After `weir import kfp --apply`, kfp.Client against weir must list what KFP's API lists for
those rows (KFP's converters: seconds to times, v1 state words to v2, archived storage states),
an imported version must run under weir, `weir storage check` must be clean, and a second
import must change nothing.
"""
import base64
import datetime
import gzip
import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import kfp
import pytest
from google.protobuf import struct_pb2

import pipelines
from conftest import (S3_REGION, compile_pipeline, database_server, provision_stores,
                      start_weir, stop_process)

# KFP 2.17's tables as its models declare them (only those the import reads).
TABLES = {
    'pipelines': ['"UUID" varchar(64) NOT NULL', '"CreatedAtInSec" bigint NOT NULL',
                  '"Name" varchar(128) NOT NULL', '"DisplayName" varchar(128) NOT NULL',
                  '"Description" {long} NOT NULL', '"Parameters" {long}',
                  '"Status" varchar(32) NOT NULL', '"Namespace" varchar(63)'],
    'pipeline_versions': ['"UUID" varchar(64) NOT NULL', '"CreatedAtInSec" bigint NOT NULL',
                          '"Name" varchar(128) NOT NULL', '"DisplayName" varchar(128) NOT NULL',
                          '"Parameters" {long} NOT NULL', '"PipelineId" varchar(64) NOT NULL',
                          '"Status" varchar(32) NOT NULL', '"CodeSourceUrl" varchar(255)',
                          '"Description" {long} NOT NULL', '"PipelineSpec" {long} NOT NULL',
                          '"PipelineSpecURI" {long} NOT NULL'],
    'experiments': ['"UUID" varchar(64) NOT NULL', '"Name" varchar(128) NOT NULL',
                    '"Description" varchar(255) NOT NULL', '"CreatedAtInSec" bigint NOT NULL',
                    '"LastRunCreatedAtInSec" bigint NOT NULL', '"Namespace" varchar(63) NOT NULL',
                    '"StorageState" varchar(32) NOT NULL'],
    'default_experiments': ['"DefaultExperimentId" varchar(64) NOT NULL'],
    'run_details': ['"UUID" varchar(64) NOT NULL', '"DisplayName" varchar(255) NOT NULL',
                    '"Name" varchar(255) NOT NULL', '"Description" {long} NOT NULL',
                    '"Namespace" varchar(63) NOT NULL', '"ExperimentUUID" varchar(64) NOT NULL',
                    '"JobUUID" varchar(64)', '"StorageState" varchar(32) NOT NULL',
                    '"ServiceAccount" varchar(255) NOT NULL', '"PipelineId" varchar(64)',
                    '"PipelineVersionId" varchar(64)', '"PipelineSpecManifest" {long}',
                    '"WorkflowSpecManifest" {long}', '"RuntimeParameters" {long}',
                    '"PipelineRoot" {long}', '"CreatedAtInSec" bigint NOT NULL',
                    '"ScheduledAtInSec" bigint', '"FinishedAtInSec" bigint',
                    '"Conditions" varchar(125) NOT NULL', '"State" varchar(64)',
                    '"StateHistory" {long}'],
    'jobs': ['"UUID" varchar(64) NOT NULL', '"DisplayName" varchar(255) NOT NULL',
             '"Name" varchar(255) NOT NULL', '"Namespace" varchar(63) NOT NULL',
             '"ServiceAccount" varchar(255) NOT NULL', '"Description" {long} NOT NULL',
             '"MaxConcurrency" bigint NOT NULL', '"NoCatchup" boolean NOT NULL',
             '"CreatedAtInSec" bigint NOT NULL', '"UpdatedAtInSec" bigint',
             '"Enabled" boolean NOT NULL', '"ExperimentUUID" varchar(64) NOT NULL',
             '"CronScheduleStartTimeInSec" bigint', '"CronScheduleEndTimeInSec" bigint',
             '"Schedule" varchar(255)', '"PeriodicScheduleStartTimeInSec" bigint',
             '"PeriodicScheduleEndTimeInSec" bigint', '"IntervalSecond" bigint',
             '"PipelineId" varchar(64)', '"PipelineVersionId" varchar(64)',
             '"PipelineSpecManifest" {long}', '"WorkflowSpecManifest" {long}',
             '"RuntimeParameters" {long}', '"PipelineRoot" {long}',
             '"Conditions" varchar(125) NOT NULL'],
}


def q(value) -> str:
    if value is None:
        return 'NULL'
    if isinstance(value, bool):
        return 'TRUE' if value else 'FALSE'
    if isinstance(value, int):
        return str(value)
    # Backslashes are literal: standard strings on PostgreSQL, NO_BACKSLASH_ESCAPES on MariaDB.
    return "'" + str(value).replace("'", "''") + "'"


def insert(table: str, row: dict) -> str:
    columns = ', '.join(f'"{c}"' for c in row)
    return f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join(q(v) for v in row.values())});'


class KfpInstallation:
    """KFP's mlpipeline database (tables, rows) and bucket, as the test made them."""

    def __init__(self, kind: str, s3, tmp: Path):
        self.server = database_server(kind)
        self.kind = kind
        self.database = f'kfp_{uuid.uuid4().hex[:12]}'
        self.mlmd_database = f'{self.database}_mlmd'
        self.cache_database = f'{self.database}_cache'
        self.url = self.server.database_url(self.database)
        self.s3 = s3
        self.bucket = s3.create_bucket()
        self.tmp = tmp
        self._create()

    def sql(self, statements: str, database: str = '') -> None:
        p = self.server.parts
        database = database or self.database
        if self.kind == 'mariadb':
            argv = ['mariadb', '-h', p.hostname, '-P', str(p.port or 3306), f'-u{p.username or "root"}',
                    database, '-e', "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES,NO_BACKSLASH_ESCAPES');" + statements]
        else:
            argv = ['psql', '-h', p.hostname, '-p', str(p.port or 5432), '-U', p.username or 'root',
                    '-d', database, '-v', 'ON_ERROR_STOP=1', '-q', '-c', statements]
        result = subprocess.run(argv, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    def _create(self) -> None:
        for database in (self.database, self.mlmd_database, self.cache_database):
            created = self.server._cli(f'CREATE DATABASE {database}')
            assert created.returncode == 0, created.stderr
        long = 'longtext' if self.kind == 'mariadb' else 'text'
        for table, columns in TABLES.items():
            body = ', '.join(c.format(long=long) for c in columns)
            key = columns[0].split()[0]
            self.sql(f'CREATE TABLE "{table}" ({body}, PRIMARY KEY ({key}));')

    def put(self, key: str, body: bytes) -> None:
        boto3.client('s3', endpoint_url=self.s3.endpoint, region_name=S3_REGION,
                     aws_access_key_id=self.s3.access_key,
                     aws_secret_access_key=self.s3.secret_key).put_object(
            Bucket=self.bucket, Key=key, Body=body)

    def drop(self) -> None:
        self.server.drop(self.database)
        self.server.drop(self.mlmd_database)
        self.server.drop(self.cache_database)


T0 = 1_700_000_000  # KFP keeps seconds

# ML Metadata's tables (schema 10, ml_metadata/util/metadata_source_query_config.cc), the
# columns schema 7 shares.
MLMD_TABLES = [
    'CREATE TABLE "Type" ("id" int PRIMARY KEY, "name" varchar(255) NOT NULL, "version" varchar(255), '
    '"type_kind" smallint NOT NULL, "description" {long})',
    'CREATE TABLE "Context" ("id" int PRIMARY KEY, "type_id" int NOT NULL, "name" varchar(255) NOT NULL, '
    '"create_time_since_epoch" bigint NOT NULL DEFAULT 0, "last_update_time_since_epoch" bigint NOT NULL DEFAULT 0)',
    'CREATE TABLE "Association" ("id" int PRIMARY KEY, "context_id" int NOT NULL, "execution_id" int NOT NULL)',
    'CREATE TABLE "Execution" ("id" int PRIMARY KEY, "type_id" int NOT NULL, "last_known_state" int, "name" varchar(255), '
    '"create_time_since_epoch" bigint NOT NULL DEFAULT 0, "last_update_time_since_epoch" bigint NOT NULL DEFAULT 0)',
    'CREATE TABLE "ExecutionProperty" ("execution_id" int NOT NULL, "name" varchar(255) NOT NULL, '
    '"is_custom_property" smallint NOT NULL, "int_value" int, "double_value" double precision, "string_value" {long}, '
    'PRIMARY KEY ("execution_id", "name", "is_custom_property"))',
    'CREATE TABLE "Event" ("id" int PRIMARY KEY, "artifact_id" int NOT NULL, "execution_id" int NOT NULL, '
    '"type" int NOT NULL, "milliseconds_since_epoch" bigint)',
    'CREATE TABLE "EventPath" ("event_id" int NOT NULL, "is_index_step" smallint NOT NULL, "step_index" int, '
    '"step_key" {long})',
    'CREATE TABLE "Artifact" ("id" int PRIMARY KEY, "type_id" int NOT NULL, "uri" {long}, "state" int, '
    '"name" varchar(255), "create_time_since_epoch" bigint NOT NULL DEFAULT 0, '
    '"last_update_time_since_epoch" bigint NOT NULL DEFAULT 0)',
    'CREATE TABLE "ArtifactProperty" ("artifact_id" int NOT NULL, "name" varchar(255) NOT NULL, '
    '"is_custom_property" smallint NOT NULL, "int_value" int, "double_value" double precision, '
    '"string_value" {long}, PRIMARY KEY ("artifact_id", "name", "is_custom_property"))',
    'CREATE TABLE "MLMDEnv" ("schema_version" int PRIMARY KEY)',
]


def mlmd_struct(value: dict) -> str:
    """A struct as ML Metadata keeps it in string_value (ml_metadata/util/struct_utils.cc)."""
    struct = struct_pb2.Struct()
    struct.update(value)
    return 'mlmd-struct::' + base64.b64encode(struct.SerializeToString()).decode()


def seed_mlmd(kfp_db: 'KfpInstallation') -> None:
    """What KFP's driver and launcher record of run r-ok: its root DAG, its `say` step with
    parameters, a metrics artifact, and the step's log published as `executor-logs`."""
    long = 'longtext' if kfp_db.kind == 'mariadb' else 'text'
    statements = [t.format(long=long) + ';' for t in MLMD_TABLES]
    ms = (T0 + 100) * 1000
    root = f'minio://{kfp_db.bucket}/v2/artifacts/hello-pipeline/r-ok/say/salt'
    rows = [
        ('MLMDEnv', {'schema_version': 10}),
        ('Type', {'id': 1, 'name': 'system.DAGExecution', 'type_kind': 0}),
        ('Type', {'id': 2, 'name': 'system.ContainerExecution', 'type_kind': 0}),
        ('Type', {'id': 3, 'name': 'system.Metrics', 'type_kind': 1}),
        ('Type', {'id': 4, 'name': 'system.Artifact', 'type_kind': 1}),
        ('Type', {'id': 5, 'name': 'system.PipelineRun', 'type_kind': 2}),
        ('Context', {'id': 1, 'type_id': 5, 'name': 'r-ok'}),
        ('Execution', {'id': 1, 'type_id': 1, 'last_known_state': 3, 'name': 'run/r-ok',
                       'create_time_since_epoch': ms, 'last_update_time_since_epoch': ms + 60_000}),
        ('Execution', {'id': 2, 'type_id': 2, 'last_known_state': 3, 'name': 'say',
                       'create_time_since_epoch': ms + 5_000, 'last_update_time_since_epoch': ms + 50_000}),
        ('Association', {'id': 1, 'context_id': 1, 'execution_id': 1}),
        ('Association', {'id': 2, 'context_id': 1, 'execution_id': 2}),
        ('Artifact', {'id': 1, 'type_id': 3, 'uri': f'{root}/metrics', 'state': 2, 'create_time_since_epoch': ms + 50_000}),
        ('Artifact', {'id': 2, 'type_id': 4, 'uri': f'{root}/executor-logs', 'state': 2,
                      'create_time_since_epoch': ms + 50_000}),
        ('Event', {'id': 1, 'artifact_id': 1, 'execution_id': 2, 'type': 4}),
        ('Event', {'id': 2, 'artifact_id': 2, 'execution_id': 2, 'type': 4}),
        ('EventPath', {'event_id': 1, 'is_index_step': 0, 'step_key': 'metrics'}),
        ('EventPath', {'event_id': 2, 'is_index_step': 0, 'step_key': 'executor-logs'}),
        ('ArtifactProperty', {'artifact_id': 1, 'name': 'display_name', 'is_custom_property': 1, 'string_value': 'metrics'}),
        ('ArtifactProperty', {'artifact_id': 1, 'name': 'accuracy', 'is_custom_property': 1, 'double_value': 0.93}),
    ]
    for name, value in [('task_name', 'say'), ('display_name', 'say'), ('parent_dag_id', 1), ('image', 'python:3.11'),
                        ('cache_fingerprint', 'f' * 64),
                        ('inputs', mlmd_struct({'message': 'hello'})), ('outputs', mlmd_struct({'Output': 'hello'}))]:
        column = 'int_value' if isinstance(value, int) else 'string_value'
        rows.append(('ExecutionProperty', {'execution_id': 2, 'name': name, 'is_custom_property': 1, column: value}))
    statements += [insert(table, row) for table, row in rows]
    kfp_db.sql(''.join(statements), database=kfp_db.mlmd_database)
    kfp_db.put('v2/artifacts/hello-pipeline/r-ok/say/salt/executor-logs', gzip.compress(b'hello from KFP\n'))


def seed(kfp_db: KfpInstallation, spec: str) -> dict:
    """Rows as KFP's API server writes them; returns what KFP's API lists for them."""
    rows = [
        ('pipelines', {'UUID': 'p-train', 'CreatedAtInSec': T0, 'Name': 'train', 'DisplayName': 'Train',
                       'Description': 'trains', 'Status': 'READY', 'Namespace': ''}),
        ('pipelines', {'UUID': 'p-legacy', 'CreatedAtInSec': T0 + 1, 'Name': 'legacy',
                       'DisplayName': 'legacy', 'Description': '', 'Status': 'READY', 'Namespace': ''}),
        ('pipeline_versions', {'UUID': 'v-train-1', 'CreatedAtInSec': T0 + 10, 'Name': 'v1',
                               'DisplayName': 'v1', 'Parameters': '', 'PipelineId': 'p-train',
                               'Status': 'READY', 'Description': 'first', 'PipelineSpec': spec,
                               'PipelineSpecURI': '', 'CodeSourceUrl': 'https://example.com/train'}),
        # KFP 1.x kept the spec only in its bucket, under pipelines/<version id>.
        ('pipeline_versions', {'UUID': 'v-legacy-1', 'CreatedAtInSec': T0 + 11, 'Name': 'legacy',
                               'DisplayName': 'legacy', 'Parameters': '', 'PipelineId': 'p-legacy',
                               'Status': 'READY', 'Description': '', 'PipelineSpec': '',
                               'PipelineSpecURI': ''}),
        ('experiments', {'UUID': 'e-default', 'Name': 'Default', 'Description': 'default',
                         'CreatedAtInSec': T0, 'LastRunCreatedAtInSec': 0, 'Namespace': '',
                         'StorageState': 'AVAILABLE'}),
        ('experiments', {'UUID': 'e-team', 'Name': 'team-a', 'Description': 'old work',
                         'CreatedAtInSec': T0 + 5, 'LastRunCreatedAtInSec': 0, 'Namespace': '',
                         'StorageState': 'ARCHIVED'}),
        ('default_experiments', {'DefaultExperimentId': 'e-default'}),
    ]
    runs = [
        ('r-ok', 'e-default', 'SUCCEEDED', 'Succeeded', {'message': 'hello'}, 100, 160, 'AVAILABLE'),
        ('r-failed', 'e-default', 'FAILED', 'Failed', {'message': 'boom'}, 200, 230, 'AVAILABLE'),
        ('r-archived', 'e-team', 'SUCCEEDED', 'Succeeded', {'message': 'old'}, 300, 390, 'ARCHIVED'),
    ]
    for run_id, experiment, state, conditions, params, created, finished, storage in runs:
        history = [{'UpdateTimeInSec': T0 + created, 'State': 'PENDING'},
                   {'UpdateTimeInSec': T0 + created + 5, 'State': 'RUNNING'},
                   {'UpdateTimeInSec': T0 + finished, 'State': state}]
        rows.append(('run_details', {
            'UUID': run_id, 'DisplayName': f'run {run_id}', 'Name': f'train-{run_id}',
            'Description': '', 'Namespace': '', 'ExperimentUUID': experiment, 'JobUUID': '',
            'StorageState': storage, 'ServiceAccount': 'pipeline-runner', 'PipelineId': 'p-train',
            'PipelineVersionId': 'v-train-1', 'PipelineSpecManifest': spec,
            'WorkflowSpecManifest': None, 'RuntimeParameters': json.dumps(params),
            'PipelineRoot': 'minio://mlpipeline/v2/artifacts', 'CreatedAtInSec': T0 + created,
            'ScheduledAtInSec': T0 + created, 'FinishedAtInSec': T0 + finished,
            'Conditions': conditions, 'State': state, 'StateHistory': json.dumps(history)}))
    rows.append(('jobs', {
        'UUID': 'j-nightly', 'DisplayName': 'nightly', 'Name': 'nightly-swf', 'Namespace': '',
        'ServiceAccount': 'pipeline-runner', 'Description': 'every night', 'MaxConcurrency': 1,
        'NoCatchup': True, 'CreatedAtInSec': T0 + 20, 'UpdatedAtInSec': T0 + 20, 'Enabled': True,
        'ExperimentUUID': 'e-default', 'Schedule': '0 0 2 * * *', 'PipelineId': 'p-train',
        'PipelineVersionId': 'v-train-1', 'PipelineSpecManifest': spec,
        'RuntimeParameters': json.dumps({'message': 'nightly'}), 'PipelineRoot': '',
        'Conditions': 'ENABLED'}))
    kfp_db.sql(''.join(insert(table, row) for table, row in rows))
    kfp_db.put('pipelines/v-legacy-1', spec.encode())
    seed_mlmd(kfp_db)
    # cachedb: KFP v1's cache (backend/src/cache/model/execution_cache.go), counted only.
    long = 'longtext' if kfp_db.kind == 'mariadb' else 'text'
    kfp_db.sql(f'CREATE TABLE "execution_caches" ("ID" bigint PRIMARY KEY, "ExecutionCacheKey" varchar(255) NOT NULL, '
               f'"ExecutionTemplate" {long} NOT NULL, "ExecutionOutput" {long}, "MaxCacheStaleness" bigint NOT NULL, '
               f'"StartedAtInSec" bigint NOT NULL, "EndedAtInSec" bigint NOT NULL);'
               + ''.join(insert('execution_caches', {'ID': i, 'ExecutionCacheKey': f'key-{i}', 'ExecutionTemplate': '{}',
                                                     'ExecutionOutput': '{}', 'MaxCacheStaleness': -1,
                                                     'StartedAtInSec': T0, 'EndedAtInSec': T0 + 1})
                         for i in range(3)), database=kfp_db.cache_database)

    def at(seconds):
        return datetime.datetime.fromtimestamp(T0 + seconds, tz=datetime.timezone.utc)

    # KFP's API leaves empty strings out (proto3 JSON), so the client reads them as None.
    return {
        'pipelines': {('p-train', 'train', 'Train', 'trains', at(0)), ('p-legacy', 'legacy', 'legacy', None, at(1))},
        'versions': {('p-train', 'v-train-1', 'v1', 'first', at(10)), ('p-legacy', 'v-legacy-1', 'legacy', None, at(11))},
        'experiments': {('e-team', 'team-a', 'old work', 'ARCHIVED')},
        'runs': {(r, f'run {r}', state, json.dumps(params, sort_keys=True), at(created), at(finished), storage)
                 for r, _, state, _, params, created, finished, storage in runs},
        'recurring_runs': {('j-nightly', 'nightly', '0 0 2 * * *', 'DISABLED', 1, True)},
    }


@pytest.fixture(params=['mariadb', 'postgres'])
def installation(request, s3_service, tmp_path):
    kfp_db = KfpInstallation(request.param, s3_service, tmp_path)
    try:
        yield kfp_db
    finally:
        kfp_db.drop()


def http_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()
    except urllib.error.HTTPError as e:
        raise AssertionError(f'{url}: {e.code} {e.read().decode()[:2000]}') from e


def import_kfp(weir_bin, kfp_db: KfpInstallation, stores, *extra) -> subprocess.CompletedProcess:
    argv = [str(weir_bin), 'import', 'kfp', '--mysql', kfp_db.url, '--mlmd-db', kfp_db.mlmd_database,
            '--cache-db', kfp_db.cache_database,
            '--objects', f's3://{kfp_db.bucket}',
            '--s3-endpoint', kfp_db.s3.endpoint, '--s3-region', S3_REGION, '--output', 'json', *extra]
    env = {**os.environ, **stores.env,
           'AWS_ACCESS_KEY_ID': kfp_db.s3.access_key, 'AWS_SECRET_ACCESS_KEY': kfp_db.s3.secret_key}
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def test_imported_installation_lists_as_kfp_listed(installation, request, weir_bin, tmp_path):
    spec = compile_pipeline(pipelines.hello_pipeline, tmp_path / 'hello.yaml').read_text()
    expected = seed(installation, spec)
    # A SQLite weir for a KFP on MariaDB, a PostgreSQL + S3 one for a KFP on PostgreSQL.
    backend = 'sqlite' if installation.kind == 'mariadb' else 'postgres'
    data_dir = tmp_path / 'weir'
    data_dir.mkdir()
    stores = provision_stores(request, backend, data_dir)
    storage = ['--metadata', stores.metadata_url, '--artifacts', stores.artifacts_url,
               '--data-dir', str(data_dir)]
    try:
        # KFP's schedules were read in Berlin time, weir's are in UTC: the report says so.
        dry = import_kfp(weir_bin, installation, stores, '--kfp-timezone', 'Europe/Berlin')
        assert dry.returncode == 1, dry.stderr  # warnings only
        plan = json.loads(dry.stdout)
        assert 'applied' not in plan
        assert {k: c['total'] for k, c in plan['counts'].items()} == {
            'pipelines': 2, 'pipeline versions': 2, 'experiments': 2, 'runs': 3, 'recurring runs': 1,
            'ml metadata executions': 2, 'ml metadata artifacts': 2}
        assert set(plan['warnings']) == {'SCHEDULE_WOULD_FIRE', 'SPEC_FROM_OBJECT_STORE', 'V1_CACHE_NOT_IMPORTED',
                                         'CRON_TIMEZONE_DIFFERS'}, plan['warnings']
        assert plan['warnings']['V1_CACHE_NOT_IMPORTED']['count'] == 3
        assert 'timezone: Europe/Berlin' in plan['warnings']['CRON_TIMEZONE_DIFFERS']['meaning']

        applied = import_kfp(weir_bin, installation, stores, '--apply', *storage)
        assert applied.returncode == 1, applied.stderr
        report = json.loads(applied.stdout)
        assert report['applied']['conflicts'] == {}, report['applied']
        assert {k: v['inserted'] for k, v in report['applied']['kinds'].items()} == {
            'pipeline': 2, 'pipeline_version': 2, 'experiment': 2, 'run': 3, 'recurring_run': 1, 'task': 2,
            'artifact': 1, 'cache entry': 1}
        assert 'backup taken' in applied.stderr, applied.stderr

        server = start_weir(weir_bin, backend, data_dir, stores.metadata_url, stores.artifacts_url,
                            stores.env)
        try:
            # While weir serves the storage, an import refuses and writes nothing.
            refused = import_kfp(weir_bin, installation, stores, '--apply', *storage)
            assert refused.returncode == 2 and 'stop it first' in refused.stderr, refused.stderr
            client = kfp.Client(host=server.url)
            listed = client.list_pipelines(page_size=100).pipelines
            assert {(p.pipeline_id, p.name, p.display_name, p.description, p.created_at)
                    for p in listed} == expected['pipelines']
            versions = set()
            for pipeline_id in ('p-train', 'p-legacy'):
                for v in client.list_pipeline_versions(pipeline_id).pipeline_versions:
                    versions.add((v.pipeline_id, v.pipeline_version_id, v.display_name, v.description,
                                  v.created_at))
            assert versions == expected['versions']
            archived = client.list_experiments(
                page_size=100, filter=json.dumps({'predicates': [{'key': 'storage_state', 'operation': 'EQUALS',
                                                                  'string_value': 'ARCHIVED'}]})).experiments
            assert {(e.experiment_id, e.display_name, e.description, e.storage_state)
                    for e in archived} == expected['experiments']
            default = client.get_experiment(experiment_name='Default')
            runs = client.list_runs(page_size=100).runs + (client.list_runs(
                page_size=100, filter=json.dumps({'predicates': [{'key': 'storage_state', 'operation': 'EQUALS',
                                                                  'string_value': 'ARCHIVED'}]})).runs or [])
            got = {(r.run_id, r.display_name, r.state,
                    json.dumps(r.runtime_config.parameters, sort_keys=True), r.created_at, r.finished_at,
                    r.storage_state) for r in runs}
            assert got == expected['runs']
            ok = client.get_run('r-ok')
            assert ok.experiment_id == default.experiment_id
            assert [h.state for h in ok.state_history] == ['PENDING', 'RUNNING', 'SUCCEEDED']
            recurring = client.list_recurring_runs(page_size=100).recurring_runs
            assert {(r.recurring_run_id, r.display_name, r.trigger.cron_schedule.cron, r.status,
                     int(r.max_concurrency), r.no_catchup) for r in recurring} == expected['recurring_runs']

            # The web UI shows the imported run's steps, its step's log and its metrics.
            say = [t for t in ok.run_details.task_details if t.display_name == 'say']
            assert len(say) == 1 and say[0].state == 'SUCCEEDED', ok.run_details
            assert 'say' in http_text(f'{server.url}/runs/r-ok')
            log = http_text(f'{server.url}/runs/r-ok/nodes/{say[0].task_id}/log')
            assert 'hello from KFP' in log, log
            listing = http_text(f'{server.url}/runs')
            assert 'accuracy' in listing and '0.93' in listing

            # The imported version runs under weir (the spec KFP 1.x kept only in its bucket).
            run = client.run_pipeline(experiment_id=default.experiment_id, job_name='after import',
                                      pipeline_id='p-legacy', version_id='v-legacy-1',
                                      params={'message': 'from weir'})
            done = client.wait_for_run_completion(run.run_id, timeout=120)
            assert done.state == 'SUCCEEDED', done

            # The step KFP ran is a weir cache entry: the same step with the same inputs is
            # taken from it instead of running.
            again = client.run_pipeline(experiment_id=default.experiment_id, job_name='cached after import',
                                        pipeline_id='p-train', version_id='v-train-1',
                                        params={'message': 'hello'}, enable_caching=True)
            done = client.wait_for_run_completion(again.run_id, timeout=120)
            assert done.state == 'SUCCEEDED', done
            tasks = json.loads(http_text(f'{server.url}/apis/weir/v1/runs/{again.run_id}/tasks'))['tasks']
            step = [t for t in tasks if t['name'] == 'say']
            assert len(step) == 1 and step[0]['cached'] is True, tasks
        finally:
            stop_process(server.process)

        check = subprocess.run([str(weir_bin), 'storage', 'check', *storage], capture_output=True, text=True,
                               env={**os.environ, **stores.env})
        assert check.returncode == 0, check.stdout + check.stderr

        again = import_kfp(weir_bin, installation, stores, '--apply', *storage)
        report = json.loads(again.stdout)
        assert all(v['inserted'] == v['updated'] == 0 for v in report['applied']['kinds'].values()), report
        assert report['checksums'] == plan['checksums']
    finally:
        stores.cleanup()
