"""Creates a schema fixture: data made through the API by this weir, saved as a backup.

    python make_fixture.py DIR     # needs target/debug/weir and kfp==2.17.3 (the test venv)
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import kfp
from kfp import compiler, dsl

ROOT = Path(__file__).resolve().parents[2]
# WEIR_BIN: a build of the released version, when the tree has moved on to the next schema.
WEIR = Path(os.environ.get('WEIR_BIN', ROOT / 'target' / 'debug' / 'weir'))


@dsl.container_component
def make_dataset(text: str, data: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'echo "making $0"; mkdir -p "$(dirname "$1")" && printf "%s" "$0" > "$1"'],
        args=[text, data.path],
    )


@dsl.component
def count(data: dsl.Input[dsl.Dataset]) -> int:
    return len(open(data.path).read())


@dsl.pipeline(name='schema-fixture')
def pipeline(text: str = 'kept across versions') -> int:
    made = make_dataset(text=text)
    return count(data=made.outputs['data']).output


def main(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        package = tmp / 'pipeline.yaml'
        compiler.Compiler().compile(pipeline, str(package))
        port = socket.socket()
        port.bind(('127.0.0.1', 0))
        host = f'127.0.0.1:{port.getsockname()[1]}'
        port.close()
        flags = ['--data-dir', str(tmp / 'data')]
        server = subprocess.Popen([str(WEIR), 'server', '--listen', host, '--executor-python', sys.executable, *flags],
                                  stderr=open(tmp / 'weir.log', 'w'))
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f'http://{host}/apis/v2beta1/healthz')
                    break
                except Exception:
                    time.sleep(0.1)
            client = kfp.Client(host=f'http://{host}')
            uploaded = client.upload_pipeline(str(package), pipeline_name='fixture-pipeline', description='v1')
            client.upload_pipeline_version(str(package), 'second', pipeline_id=uploaded.pipeline_id)
            experiment = client.create_experiment('fixture-experiment', description='made by the fixture')
            done = client.create_run_from_pipeline_package(str(package), arguments={'text': 'hello'},
                                                           run_name='finished', experiment_id=experiment.experiment_id)
            client.wait_for_run_completion(done.run_id, 120, sleep_duration=0.5)
            archived = client.create_experiment('archived-experiment')
            later = client.create_run_from_pipeline_package(str(package), run_name='archived-run',
                                                            experiment_id=archived.experiment_id)
            client.wait_for_run_completion(later.run_id, 120, sleep_duration=0.5)
            client.archive_experiment(archived.experiment_id)
            client.create_recurring_run(experiment.experiment_id, 'nightly', cron_expression='0 0 2 * * *',
                                        pipeline_package_path=str(package), max_concurrency=2)
            client.create_recurring_run(experiment.experiment_id, 'hourly', interval_second=3600,
                                        pipeline_package_path=str(package), enabled=False)
        finally:
            server.terminate()
            server.wait()
        subprocess.run([str(WEIR), 'storage', 'backup', '-o', str(target / 'backup.tar.gz'), *flags], check=True)
    print(f'wrote {target / "backup.tar.gz"}')


if __name__ == '__main__':
    main(Path(sys.argv[1]))
