"""What the reliability scripts (crash_loop.py, load.py) share: a fresh pair of stores on any
backend, a free port, a log's tail."""

import os
import socket
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Optional


class SetupError(Exception):
    """The script could not run (weir would not start, a store is unreachable...): not a failed
    check."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])
    except FileNotFoundError:
        return f'(no {path})'


class Stores:
    """A fresh metadata store (a SQLite file, or a database made on the PostgreSQL or MariaDB
    server) and an artifact folder; a database made here is dropped by `cleanup`."""

    def __init__(self, backend: str, work: Path, postgres_url: str, mysql_url: str = '',
                 prefix: str = 'weir_reliability'):
        self.backend = backend
        data = work / 'data'
        data.mkdir(parents=True, exist_ok=True)
        self.artifacts_url = f'file://{data / "artifacts"}'
        self.server_url = {'postgres': postgres_url, 'mariadb': mysql_url}.get(backend, '')
        self.database: Optional[str] = None
        if backend == 'sqlite':
            self.metadata_url = f'sqlite://{data / "weir.db"}'
            return
        name = f'{prefix}_{uuid.uuid4().hex[:12]}'
        quoted = f'`{name}`' if backend == 'mariadb' else f'"{name}"'
        self._sql(f'CREATE DATABASE {quoted}')
        self.database = name
        self.metadata_url = f'{self.server_url.rstrip("/")}/{name}'

    def _sql(self, sql: str) -> None:
        p = urllib.parse.urlsplit(self.server_url)
        user = urllib.parse.unquote(p.username or 'root')
        env = dict(os.environ)
        if self.backend == 'mariadb':
            argv = ['mariadb', '-h', p.hostname or '127.0.0.1', '-P', str(p.port or 3306),
                    f'-u{user}', '-e', sql]
            if p.password:
                argv.insert(-2, f'-p{urllib.parse.unquote(p.password)}')
        else:
            argv = ['psql', '-h', p.hostname or '127.0.0.1', '-p', str(p.port or 5432),
                    '-U', user, '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', sql]
            if p.password:
                env['PGPASSWORD'] = urllib.parse.unquote(p.password)
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        except FileNotFoundError as error:
            raise SetupError(f'{argv[0]} is needed for the {self.backend} backend: {error}')
        if result.returncode != 0:
            raise SetupError(f'{sql!r} failed on {p.hostname}:{p.port}: {result.stderr.strip()}')

    def cleanup(self) -> None:
        if self.database is None:
            return
        drop = (f'DROP DATABASE IF EXISTS `{self.database}`' if self.backend == 'mariadb'
                else f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        try:
            self._sql(drop)
        except SetupError as error:
            print(f'warning: {error}', file=sys.stderr)
