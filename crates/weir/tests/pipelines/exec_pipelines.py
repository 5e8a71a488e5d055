"""Pipelines for the execution tests of the weir binary, compiled with kfp==2.17.3:

    python exec_pipelines.py   # writes the .yaml files beside this file
"""
from kfp import compiler, dsl


@dsl.component(base_image='python:3.11', packages_to_install=['tinydb==4.8.0'])
def uses_package() -> str:
    import tinydb
    return tinydb.__version__


@dsl.component(base_image='python:3.11', packages_to_install=['weir-test-no-such-package-zz==0.0.1'])
def needs_missing_package() -> str:
    return 'unreachable'


@dsl.container_component
def missing_tool():
    return dsl.ContainerSpec(image='alpine:3.19', command=['weir-no-such-tool'], args=['x'])


@dsl.container_component
def exits_badly():
    return dsl.ContainerSpec(image='alpine:3.19', command=['sh', '-c', 'echo about to fail >&2; exit 7'])


@dsl.container_component
def first(marker_dir: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'echo x >> "$0/first.count" && mkdir -p "$(dirname "$1")" && printf ok > "$1"'],
        args=[marker_dir, out],
    )


@dsl.container_component
def fails_until_fixed(marker_dir: str, after: str):
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'test -f "$0/fixed" || { echo not fixed yet; exit 1; }'],
        args=[marker_dir, after],
    )


@dsl.container_component
def sleeper(marker_dir: str):
    return dsl.ContainerSpec(image='alpine:3.19', command=['sh', '-c', 'echo $$ > "$0/sleeper.pid"; sleep 300'], args=[marker_dir])


@dsl.container_component
def make_dataset(text: str, data: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'echo "making $0"; mkdir -p "$(dirname "$1")" && printf "%s" "$0" > "$1"'],
        args=[text, data.path],
    )


@dsl.pipeline(name='exec-dataset')
def dataset(text: str = 'hello storage'):
    make_dataset(text=text)


@dsl.container_component
def short_sleep(marker_dir: str):
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'echo $$ > "$0/short.pid"; sleep 2; echo done > "$0/short.finished"'],
        args=[marker_dir],
    )


@dsl.pipeline(name='exec-short-sleep')
def short(marker_dir: str):
    short_sleep(marker_dir=marker_dir)


@dsl.pipeline(name='exec-packages')
def packages() -> str:
    return uses_package().output


@dsl.pipeline(name='exec-missing-package')
def missing_package():
    needs_missing_package()


@dsl.pipeline(name='exec-missing-tool')
def missing_tool_pipeline():
    missing_tool()


@dsl.pipeline(name='exec-bad-exit')
def bad_exit():
    exits_badly()


@dsl.pipeline(name='exec-retry-run')
def retry_run(marker_dir: str):
    f = first(marker_dir=marker_dir)
    fails_until_fixed(marker_dir=marker_dir, after=f.output)


@dsl.pipeline(name='exec-terminate')
def terminate(marker_dir: str):
    sleeper(marker_dir=marker_dir)


@dsl.container_component
def env_dump(marker_dir: str):
    """Writes what its process sees of the environment: `env`, and the block it started with."""
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'env > "$0/container.env"; tr "\\0" "\\n" < /proc/self/environ > "$0/container.proc"'],
        args=[marker_dir],
    )


@dsl.component(base_image='python:3.11')
def python_env_dump(marker_dir: str):
    import os
    with open(os.path.join(marker_dir, 'python.env'), 'w') as out:
        out.write('\n'.join(f'{k}={v}' for k, v in os.environ.items()))
    with open('/proc/self/environ', 'rb') as block, open(os.path.join(marker_dir, 'python.proc'), 'wb') as out:
        out.write(block.read().replace(b'\0', b'\n'))


@dsl.pipeline(name='exec-env-probe')
def env_probe(marker_dir: str):
    env_dump(marker_dir=marker_dir).set_env_variable('FROM_COMPONENT', 'yes')
    python_env_dump(marker_dir=marker_dir).set_env_variable('FROM_COMPONENT', 'yes')


@dsl.container_component
def read_input(data: dsl.Input[dsl.Dataset], marker_dir: str):
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'cat "$0" > "$1/imported.txt"'],
        args=[data.path, marker_dir],
    )


@dsl.pipeline(name='exec-import-local')
def import_local(uri: str, marker_dir: str):
    imported = dsl.importer(artifact_uri=uri, artifact_class=dsl.Dataset, reimport=True)
    read_input(data=imported.output, marker_dir=marker_dir)


@dsl.container_component
def relay(text: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'mkdir -p "$(dirname "$1")" && printf "%s+" "$0" > "$1"'],
        args=[text, out],
    )


@dsl.pipeline(name='exec-chain')
def chain(text: str = 'a'):
    one = relay(text=text).set_caching_options(False)
    two = relay(text=one.output).set_caching_options(False)
    relay(text=two.output).set_caching_options(False)


@dsl.container_component
def make_folder(out: dsl.Output[dsl.Artifact]):
    return dsl.ContainerSpec(image='alpine:3.19', command=['sh', '-c', 'mkdir -p "$0/assets"'], args=[out.path])


@dsl.component(base_image='python:3.11')
def says_nothing():
    pass


@dsl.component(base_image='python:3.11')
def notes_beside() -> str:
    """Writes a file of its own under its task root, which it outputs no artifact into."""
    note = dsl.get_uri('note.txt')
    with open(note, 'w') as f:
        f.write('kept')
    return note


@dsl.pipeline(name='exec-folders')
def folders():
    make_folder().set_caching_options(False)
    says_nothing().set_caching_options(False)
    notes_beside().set_caching_options(False)


@dsl.container_component
def gate(marker_dir: str, item: int):
    """Says it started, waits for the test's `go`, then says it is done and ends."""
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'touch "$0/started-$1"; while [ ! -e "$0/go" ]; do sleep 0.02; done; touch "$0/done-$1"'],
        args=[marker_dir, item],
    )


@dsl.pipeline(name='exec-gates')
def gates(marker_dir: str):
    with dsl.ParallelFor(items=list(range(12)), parallelism=12) as item:
        gate(marker_dir=marker_dir, item=item).set_caching_options(False)


if __name__ == '__main__':
    for name, func in [('short', short), ('dataset', dataset), ('packages', packages), ('missing_package', missing_package),
                       ('missing_tool', missing_tool_pipeline), ('bad_exit', bad_exit),
                       ('retry_run', retry_run), ('terminate', terminate), ('env_probe', env_probe),
                       ('import_local', import_local), ('chain', chain),
                       ('folders', folders), ('gates', gates)]:
        compiler.Compiler().compile(func, __file__.replace('exec_pipelines.py', f'{name}.yaml'))
