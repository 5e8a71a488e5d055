"""Fixtures for the kfp SDK compatibility suite.

Every test module gets one weir server per backend pair (module scope, to keep the run short):

* `sqlite`:   `--metadata sqlite://…/weir.db --artifacts file://…/artifacts`
* `mariadb`:  a fresh MariaDB database + an S3 bucket (moto, or WEIR_TEST_S3_ENDPOINT)
* `postgres`: a fresh PostgreSQL database + an S3 bucket

A missing binary or database/S3 service fails the tests: "supports PostgreSQL" has to mean the
suite ran on PostgreSQL, so nothing here ever skips.

Environment:
  WEIR_BIN                 weir binary (default <repo>/target/debug/weir)
  WEIR_TEST_MYSQL_URL      MariaDB/MySQL server URL without database (mysql://root@127.0.0.1:3306)
  WEIR_TEST_POSTGRES_URL   PostgreSQL server URL without database (postgres://root@127.0.0.1:5432)
  WEIR_TEST_S3_ENDPOINT    use this S3 endpoint instead of starting moto_server
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import boto3
import kfp
import pytest
import yaml
from kfp import compiler

import pipelines

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIR_BIN = REPO_ROOT / 'target' / 'debug' / 'weir'
BACKENDS = ['sqlite', 'mariadb', 'postgres']
HEALTHZ_TIMEOUT_S = 60.0
S3_REGION = 'us-east-1'

# The collector is on in every weir this suite starts: it applies a retention policy every
# 2 s (one that matches no run of these tests: they must pass with retention running) and
# deletes the objects of every run a test deletes. A test that sets its own keeps its own.
os.environ.setdefault('WEIR_RETENTION_INTERVAL_SECONDS', '2')
os.environ.setdefault('WEIR_RETENTION_POLICIES',
                      json.dumps([{'name': 'canceled-30d', 'states': ['CANCELED'], 'older_than': '30d'}]))


# --------------------------------------------------------------------------------------------
# Small process and network utilities


def free_port() -> int:
    """A port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors='replace')
    except FileNotFoundError:
        return f'(no log file at {path})'
    return '\n'.join(text.splitlines()[-lines:]) or '(log is empty)'


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process does not exit within the grace period."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_s)


def http_status(url: str, timeout: float = 2.0) -> Optional[int]:
    """HTTP status of a GET, or None if nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return None


def run_cli(argv: List[str], env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Runs a database client; a missing executable counts as a failed command."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **(env or {})})
    except FileNotFoundError as error:
        return subprocess.CompletedProcess(argv, 127, '', str(error))


# --------------------------------------------------------------------------------------------
# Database servers: each weir instance gets its own database, dropped afterwards


@dataclass
class DatabaseServer:
    """A MariaDB or PostgreSQL server reachable through its command-line client."""
    kind: str  # 'mariadb' | 'postgres'
    url: str  # server URL without database

    @property
    def parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self.url)

    def database_url(self, database: str) -> str:
        return f'{self.url.rstrip("/")}/{database}'

    def _cli(self, sql: str) -> subprocess.CompletedProcess:
        p = self.parts
        if self.kind == 'mariadb':
            argv = ['mariadb', '-h', p.hostname or '127.0.0.1', '-P', str(p.port or 3306),
                    f'-u{urllib.parse.unquote(p.username or "root")}']
            if p.password:
                argv.append(f'-p{urllib.parse.unquote(p.password)}')
            return run_cli(argv + ['-e', sql])
        env = {'PGPASSWORD': urllib.parse.unquote(p.password)} if p.password else {}
        argv = ['psql', '-h', p.hostname or '127.0.0.1', '-p', str(p.port or 5432),
                '-U', urllib.parse.unquote(p.username or 'root'), '-d', 'postgres',
                '-v', 'ON_ERROR_STOP=1', '-c', sql]
        return run_cli(argv, env)

    def check_reachable(self) -> None:
        result = self._cli('SELECT 1')
        if result.returncode != 0:
            pytest.fail(f'{self.kind} server at {self.url} is not reachable (needed by the '
                        f'{self.kind} backend pair):\n{result.stderr.strip()}', pytrace=False)

    def drop(self, database: str) -> None:
        if self.kind == 'mariadb':
            result = self._cli(f'DROP DATABASE IF EXISTS `{database}`')
        else:
            result = self._cli(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if result.returncode != 0:
            print(f'warning: could not drop {self.kind} database {database}: {result.stderr}',
                  file=sys.stderr)


# --------------------------------------------------------------------------------------------
# S3 (moto_server unless WEIR_TEST_S3_ENDPOINT is given)


@dataclass
class S3Service:
    endpoint: str
    access_key: str
    secret_key: str

    def weir_env(self) -> Dict[str, str]:
        """What the weir process needs to reach this endpoint (the usual AWS variables)."""
        return {
            'AWS_ENDPOINT_URL': self.endpoint,
            'AWS_ACCESS_KEY_ID': self.access_key,
            'AWS_SECRET_ACCESS_KEY': self.secret_key,
            'AWS_REGION': S3_REGION,
        }

    def create_bucket(self) -> str:
        bucket = f'weir-sdk-{uuid.uuid4().hex[:12]}'
        s3 = boto3.client('s3', endpoint_url=self.endpoint, region_name=S3_REGION,
                          aws_access_key_id=self.access_key,
                          aws_secret_access_key=self.secret_key)
        s3.create_bucket(Bucket=bucket)
        return bucket


@pytest.fixture(scope='session')
def s3_service(tmp_path_factory) -> Iterator[S3Service]:
    """One S3 endpoint for the whole session; only started if a non-sqlite pair needs it."""
    access_key = os.environ.get('AWS_ACCESS_KEY_ID', 'test')
    secret_key = os.environ.get('AWS_SECRET_ACCESS_KEY', 'test')
    external = os.environ.get('WEIR_TEST_S3_ENDPOINT')
    if external:
        yield S3Service(external, access_key, secret_key)
        return

    moto_bin = Path(sys.executable).parent / 'moto_server'
    if not moto_bin.exists():
        pytest.fail(f'moto_server not found at {moto_bin}; install tests/sdk/requirements.txt '
                    'into this venv or set WEIR_TEST_S3_ENDPOINT', pytrace=False)
    port = free_port()
    log_path = tmp_path_factory.mktemp('moto') / 'moto.log'
    with open(log_path, 'wb') as log:
        process = subprocess.Popen([str(moto_bin), '-H', '127.0.0.1', '-p', str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
    endpoint = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 30
        while http_status(endpoint) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f'moto_server did not come up on {endpoint}:\n{log_tail(log_path)}',
                            pytrace=False)
            time.sleep(0.1)
        # moto accepts any credentials; use the ones weir will be given.
        yield S3Service(endpoint, 'test', 'test')
    finally:
        stop_process(process)


# --------------------------------------------------------------------------------------------
# The weir server


@pytest.fixture(scope='session')
def weir_bin() -> Path:
    path = Path(os.environ.get('WEIR_BIN', DEFAULT_WEIR_BIN))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f'weir binary not found at {path}: build it first (cargo build -p weir) '
                    'or point WEIR_BIN at it', pytrace=False)
    return path


@dataclass
class WeirServer:
    backend: str
    url: str
    log_path: Path
    process: subprocess.Popen
    metadata_url: str
    artifacts_url: str
    extra: Dict[str, str] = field(default_factory=dict)  # environment given to weir (S3)

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)

    def put_object(self, key: str, data: bytes) -> str:
        """Writes bytes into weir's artifact store under `key`, behind weir's back (as a user
        would put a file in the bucket for dsl.importer), and returns the object's URI."""
        base = self.artifacts_url.rstrip('/')
        uri = f'{base}/{key}'
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme == 'file':
            path = Path(parts.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        elif parts.scheme == 's3':
            s3 = boto3.client('s3', endpoint_url=self.extra['AWS_ENDPOINT_URL'],
                              region_name=self.extra.get('AWS_REGION', S3_REGION),
                              aws_access_key_id=self.extra['AWS_ACCESS_KEY_ID'],
                              aws_secret_access_key=self.extra['AWS_SECRET_ACCESS_KEY'])
            s3.put_object(Bucket=parts.netloc, Key=parts.path.lstrip('/'), Body=data)
        else:
            raise ValueError(f'cannot write into artifact store {self.artifacts_url}')
        return uri


def weir_server_argv(weir_bin: Path, port: int, data_dir: Path, metadata_url: str,
                     artifacts_url: str, name: Optional[str] = None) -> List[str]:
    """The `weir server` command line the suite uses."""
    argv = [str(weir_bin), 'server', '--listen', f'127.0.0.1:{port}',
            '--data-dir', str(data_dir), '--metadata', metadata_url,
            '--artifacts', artifacts_url, '--log-format', 'json',
            # Steps run as local processes with this suite's interpreter, which has kfp, so
            # lightweight Python components skip their pip preamble.
            '--executor-python', sys.executable]
    if name is not None:
        argv += ['--name', name]
    return argv


def start_weir(weir_bin: Path, backend: str, data_dir: Path, metadata_url: str,
               artifacts_url: str, env: Dict[str, str], name: Optional[str] = None,
               log_path: Optional[Path] = None) -> WeirServer:
    """Starts `weir server` and waits until /healthz answers 200.

    The log goes to `log_path` (default `data_dir/weir.log`); `name` is passed as `--name`.
    """
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    log_path = log_path or data_dir / 'weir.log'
    argv = weir_server_argv(weir_bin, port, data_dir, metadata_url, artifacts_url, name)
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir,
                                   env={**os.environ, **env})
    server = WeirServer(backend, url, log_path, process, metadata_url, artifacts_url, dict(env))

    healthz = f'{url}/apis/v2beta1/healthz'
    deadline = time.monotonic() + HEALTHZ_TIMEOUT_S
    status = None
    while status != 200:
        if process.poll() is not None:
            pytest.fail(f'weir ({backend}) exited with code {process.returncode} before '
                        f'answering healthz.\ncommand: {" ".join(argv)}\n'
                        f'log tail:\n{server.log_tail()}', pytrace=False)
        if time.monotonic() > deadline:
            stop_process(process)
            pytest.fail(f'weir ({backend}) did not answer 200 on {healthz} within '
                        f'{HEALTHZ_TIMEOUT_S:.0f}s (last status {status}).\n'
                        f'command: {" ".join(argv)}\nlog tail:\n{server.log_tail()}',
                        pytrace=False)
        status = http_status(healthz)
        if status != 200:
            time.sleep(0.1)
    return server


def database_server(backend: str) -> DatabaseServer:
    """The MariaDB or PostgreSQL server of a backend pair (checked to be reachable)."""
    if backend == 'mariadb':
        database = DatabaseServer(
            'mariadb', os.environ.get('WEIR_TEST_MYSQL_URL', 'mysql://root@127.0.0.1:3306'))
    else:
        database = DatabaseServer(
            'postgres', os.environ.get('WEIR_TEST_POSTGRES_URL', 'postgres://root@127.0.0.1:5432'))
    database.check_reachable()
    return database


@dataclass
class Stores:
    """The two stores of one weir installation (and any extra empty ones made beside them).

    Databases made here are dropped by `cleanup`; buckets are left to the S3 service.
    """
    backend: str
    metadata_url: str
    artifacts_url: str
    env: Dict[str, str]  # environment weir (and `weir storage`) needs to reach the stores
    database: Optional[DatabaseServer] = None
    s3: Optional[S3Service] = None
    database_names: List[str] = field(default_factory=list)

    def new_metadata_url(self, folder: Path) -> str:
        """A metadata store of the same kind that nothing has used yet."""
        if self.database is None:
            folder.mkdir(parents=True, exist_ok=True)
            return f'sqlite://{folder}/weir.db'
        name = f'weir_sdk_{uuid.uuid4().hex[:12]}'
        self.database_names.append(name)
        return self.database.database_url(name)

    def new_artifacts_url(self, folder: Path) -> str:
        """An artifact store of the same kind that nothing has used yet."""
        if self.s3 is None:
            return f'file://{folder}/artifacts'
        return f's3://{self.s3.create_bucket()}/weir'

    def s3_client(self):
        assert self.s3 is not None, f'{self.backend} keeps artifacts in files, not S3'
        return boto3.client('s3', endpoint_url=self.s3.endpoint, region_name=S3_REGION,
                            aws_access_key_id=self.s3.access_key,
                            aws_secret_access_key=self.s3.secret_key)

    def cleanup(self) -> None:
        if self.database is not None:
            for name in self.database_names:
                self.database.drop(name)


def provision_stores(request, backend: str, data_dir: Path) -> Stores:
    """Fresh stores for a backend pair: SQLite + folder inside `data_dir`, or a new
    MariaDB/PostgreSQL database + a new S3 bucket."""
    if backend == 'sqlite':
        return Stores(backend, f'sqlite://{data_dir}/weir.db', f'file://{data_dir}/artifacts', {})
    database = database_server(backend)
    s3: S3Service = request.getfixturevalue('s3_service')
    stores = Stores(backend, '', '', s3.weir_env(), database, s3)
    stores.metadata_url = stores.new_metadata_url(data_dir)
    stores.artifacts_url = stores.new_artifacts_url(data_dir)
    return stores


@pytest.fixture(scope='module', params=BACKENDS)
def weir_server(request, weir_bin, tmp_path_factory) -> Iterator[WeirServer]:
    """One weir server per backend pair for the whole test module, stopped afterwards."""
    backend = request.param
    data_dir = tmp_path_factory.mktemp(f'weir-{backend}')
    stores = provision_stores(request, backend, data_dir)
    server = None
    try:
        server = start_weir(weir_bin, backend, data_dir, stores.metadata_url,
                            stores.artifacts_url, stores.env)
        yield server
    finally:
        if server is not None:
            stop_process(server.process)
        stores.cleanup()


@pytest.fixture(scope='module')
def client(weir_server: WeirServer) -> kfp.Client:
    """A kfp.Client built exactly as a user would (its constructor calls /healthz)."""
    return kfp.Client(host=weir_server.url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the weir log to every failing test that used a server."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        # The module's server, and those of fixtures that start their own (`weir_servers`).
        servers: List[WeirServer] = []
        for value in getattr(item, 'funcargs', {}).values():
            if isinstance(value, WeirServer):
                servers.append(value)
            servers.extend(getattr(value, 'weir_servers', None) or [])
        for server in servers:
            report.sections.append((f'weir log tail ({server.backend}, {server.log_path})',
                                    server.log_tail()))


# --------------------------------------------------------------------------------------------
# Compiled pipeline packages


@dataclass
class Packages:
    """Pipelines compiled by the SDK, plus the other package formats KFP accepts."""
    params_yaml: Path
    params_yml: Path
    params_json: Path
    params_zip: Path
    params_tgz: Path
    chain_yaml: Path
    hello_yaml: Path

    @staticmethod
    def load(path: Path) -> dict:
        """The PipelineSpec of a compiled YAML package (its first document)."""
        with open(path) as f:
            return next(yaml.safe_load_all(f))


def compile_pipeline(func, path: Path, pipeline_name: Optional[str] = None) -> Path:
    compiler.Compiler().compile(func, str(path), pipeline_name=pipeline_name)
    return path


@pytest.fixture(scope='session')
def packages(tmp_path_factory) -> Packages:
    """Compiles the suite's pipelines once and derives .yml/.json/.zip/.tar.gz from the YAML."""
    out = tmp_path_factory.mktemp('packages')
    params_yaml = compile_pipeline(pipelines.params_pipeline, out / 'params.yaml')
    chain_yaml = compile_pipeline(pipelines.chain_pipeline, out / 'chain.yaml')
    hello_yaml = compile_pipeline(pipelines.hello_pipeline, out / 'hello.yaml')

    params_yml = out / 'params.yml'
    shutil.copyfile(params_yaml, params_yml)
    params_json = out / 'params.json'
    params_json.write_text(json.dumps(Packages.load(params_yaml), indent=2))
    # KFP reads archives holding a single pipeline file.
    params_zip = out / 'params.zip'
    with zipfile.ZipFile(params_zip, 'w') as archive:
        archive.write(params_yaml, 'pipeline.yaml')
    params_tgz = out / 'params.tar.gz'
    with tarfile.open(params_tgz, 'w:gz') as archive:
        archive.add(params_yaml, 'pipeline.yaml')

    return Packages(params_yaml, params_yml, params_json, params_zip, params_tgz, chain_yaml,
                    hello_yaml)


@pytest.fixture
def compile_named(tmp_path) -> Callable[..., Path]:
    """Compiles a pipeline with a chosen pipelineInfo.name (so uploads without a name differ)."""

    def compile_it(func, pipeline_name: str) -> Path:
        return compile_pipeline(func, tmp_path / f'{pipeline_name}.yaml', pipeline_name)

    return compile_it


@pytest.fixture
def write_spec(tmp_path) -> Callable[[object, str], Path]:
    """Writes a (possibly broken) spec or raw text to a .yaml file for upload tests."""

    def write(spec, filename: str = 'pipeline.yaml') -> Path:
        path = tmp_path / filename
        path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
        return path

    return write
