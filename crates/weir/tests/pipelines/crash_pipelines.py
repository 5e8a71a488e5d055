"""Pipelines for the crash-safety tests, compiled with kfp==2.17.3 (container components only,
so they run without Python):

    python crash_pipelines.py   # writes the .yaml files beside this file
"""
from kfp import compiler, dsl


@dsl.container_component
def quick(marker_dir: str, out: dsl.OutputPath(str)):
    """Counts its runs in marker_dir/quick.count, so a test can see it ran once."""
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'echo quick ran && echo x >> "$0/quick.count" && mkdir -p "$(dirname "$1")" && printf done > "$1"'],
        args=[marker_dir, out],
    )


@dsl.container_component
def slow_once(marker_dir: str, after: str):
    """Sleeps long on its first attempt (the test kills weir then); succeeds at once after."""
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'echo $$ >> "$0/slow.pids"; if [ -f "$0/slow.started" ]; then exit 0; fi; touch "$0/slow.started"; sleep 120'],
        args=[marker_dir, after],
    )


@dsl.container_component
def waiter(marker_dir: str, out: dsl.OutputPath(str)):
    """Runs until the test creates marker_dir/release, counting its starts in waiter.count."""
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'echo x >> "$0/waiter.count"; echo $$ > "$0/waiter.pid"; '
                 'while [ ! -f "$0/release" ]; do sleep 0.05; done; '
                 'mkdir -p "$(dirname "$1")" && printf released > "$1"'],
        args=[marker_dir, out],
    )


@dsl.container_component
def consumer(marker_dir: str, value: str):
    """Records the value it was given, so a test can see the waiter's output was kept."""
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'printf "%s" "$1" > "$0/consumer.txt"'],
        args=[marker_dir, value],
    )


@dsl.pipeline(name='crash-adopt')
def crash_adopt(marker_dir: str):
    w = waiter(marker_dir=marker_dir)
    consumer(marker_dir=marker_dir, value=w.output)


@dsl.pipeline(name='crash-retry')
def crash_retry(marker_dir: str):
    q = quick(marker_dir=marker_dir)
    slow_once(marker_dir=marker_dir, after=q.output).set_retry(num_retries=2, backoff_duration='0s')


@dsl.pipeline(name='crash-no-retry')
def crash_no_retry(marker_dir: str):
    q = quick(marker_dir=marker_dir)
    slow_once(marker_dir=marker_dir, after=q.output)


if __name__ == '__main__':
    compiler.Compiler().compile(crash_retry, __file__.replace('crash_pipelines.py', 'crash_retry.yaml'))
    compiler.Compiler().compile(crash_no_retry, __file__.replace('crash_pipelines.py', 'crash_no_retry.yaml'))
    compiler.Compiler().compile(crash_adopt, __file__.replace('crash_pipelines.py', 'crash_adopt.yaml'))
