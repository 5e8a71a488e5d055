"""Pipelines that test_execution.py actually runs on weir.

One group per kind of IR feature, lettered a–i like the optional reference fixtures that
test_shared_fixtures.py runs. Every step is fast: lightweight Python components (weir runs them
with an interpreter that has kfp, so no pip preamble) or container components built from
`sh -c`, `echo`, `printf`, `cat` only, so any image name works with the local driver. Steps
that must be observable from the test (caching, retries, termination) write into files whose
paths are pipeline parameters: the steps run as local processes on the machine that runs the
tests.
"""
from typing import Dict, List, NamedTuple, Optional

from kfp import dsl
from kfp.dsl import (ClassificationMetrics, Dataset, Input, Metrics, Model, Output, OutputPath,
                     PipelineTaskFinalStatus)

IMAGE = 'python:3.11'  # never pulled by the local driver; kept as the SDK would write it
SH_IMAGE = 'alpine:3.19'

# --------------------------------------------------------------------------------------------
# a: one component, parameters of every type, pipeline and component defaults, pipeline output


@dsl.component(base_image=IMAGE)
def describe(a: float, b: int, name: str, flag: bool, items: List[str], cfg: Dict[str, int],
             suffix: str = '.', count: int = 3) -> str:
    """Echoes its inputs with their Python types (the executor passes values unchanged)."""
    import json
    return json.dumps({
        'a': a, 'b': b, 'name': name, 'flag': flag, 'items': items, 'cfg': cfg,
        'suffix': suffix, 'count': count, 'sum': a + b,
        'types': {k: type(v).__name__ for k, v in
                  [('a', a), ('b', b), ('name', name), ('flag', flag), ('items', items),
                   ('cfg', cfg), ('count', count)]},
        'cfg_value_types': sorted({type(v).__name__ for v in cfg.values()}),
    }, sort_keys=True)


@dsl.pipeline(name='weir-exec-params')
def params_pipeline(a: float = 1.5, b: int = 2, name: str = 'hello', flag: bool = True,
                    items: List[str] = ['x', 'y'], cfg: Dict[str, int] = {'k': 1}) -> str:
    return describe(a=a, b=b, name=name, flag=flag, items=items, cfg=cfg).output


# --------------------------------------------------------------------------------------------
# b: three-step chain with NamedTuple outputs and a display name


@dsl.component(base_image=IMAGE)
def produce(seed: int) -> int:
    return seed * 2


@dsl.component(base_image=IMAGE)
def transform(x: int, suffix: str) -> NamedTuple('Out', [('text', str), ('length', int)]):
    from collections import namedtuple
    text = f'{x}-{suffix}'
    return namedtuple('Out', ['text', 'length'])(text, len(text))


@dsl.component(base_image=IMAGE)
def consume(text: str, length: int) -> str:
    print('consume got', text, length)
    return f'{text.upper()}/{length}'


@dsl.pipeline(name='weir-exec-chain')
def chain_pipeline(seed: int = 21, suffix: str = 'abc') -> str:
    p = produce(seed=seed)
    t = transform(x=p.output, suffix=suffix)
    c = consume(text=t.outputs['text'], length=t.outputs['length'])
    c.set_display_name('final consumer')
    return c.output


# --------------------------------------------------------------------------------------------
# c: Dataset/Model artifacts with metadata, an OutputPath(str) parameter, artifact pipeline output


@dsl.component(base_image=IMAGE)
def make_data(rows: int, data: Output[Dataset]):
    with open(data.path, 'w') as f:
        for i in range(rows):
            f.write(f'{i},{i * i}\n')
    data.metadata['rows'] = rows
    data.metadata['note'] = 'squares'


@dsl.component(base_image=IMAGE)
def train(data: Input[Dataset], model: Output[Model], report: OutputPath(str)):
    with open(data.path) as f:
        n = len(f.readlines())
    with open(model.path, 'w') as f:
        f.write(f'model trained on {n} rows (declared {data.metadata["rows"]})')
    model.metadata['framework'] = 'none'
    model.metadata['rows_seen'] = n
    with open(report, 'w') as f:
        f.write(f'rows={n}')


@dsl.component(base_image=IMAGE)
def evaluate_model(model: Input[Model], report: str) -> str:
    with open(model.path) as f:
        return f.read() + ' | ' + report + ' | uri=' + model.uri


@dsl.pipeline(name='weir-exec-artifacts')
def artifacts_pipeline(rows: int = 3) -> Model:
    d = make_data(rows=rows)
    t = train(data=d.outputs['data'])
    evaluate_model(model=t.outputs['model'], report=t.outputs['report'])
    return t.outputs['model']


# --------------------------------------------------------------------------------------------
# d: dsl.If / dsl.Elif / dsl.Else with dsl.OneOf, and the legacy dsl.Condition


@dsl.component(base_image=IMAGE)
def flip(seed: int) -> str:
    return ['heads', 'tails', 'edge'][seed % 3]


@dsl.component(base_image=IMAGE)
def number(n: int) -> int:
    return n


@dsl.component(base_image=IMAGE)
def say(msg: str) -> str:
    print(msg)
    return msg


@dsl.pipeline(name='weir-exec-condition')
def condition_pipeline(seed: int = 3, threshold: int = 10) -> str:
    f = flip(seed=seed)
    with dsl.If(f.output == 'heads', name='is-heads'):
        h = say(msg='got heads')
    with dsl.Elif(f.output == 'tails', name='is-tails'):
        t = say(msg='got tails')
    with dsl.Else(name='is-edge'):
        o = say(msg='got edge')
    n = number(n=seed)
    with dsl.Condition(n.output > threshold, name='is-big'):
        say(msg='big number')
    return dsl.OneOf(h.output, t.output, o.output)


# --------------------------------------------------------------------------------------------
# e: ParallelFor over a task output (parallelism 2), a raw list, a list of dicts; dsl.Collected


@dsl.component(base_image=IMAGE)
def make_list(n: int) -> List[int]:
    return list(range(n))


@dsl.component(base_image=IMAGE)
def square(x: int, probe_dir: str) -> int:
    """Leaves a marker while it runs and records how many markers it saw (parallelism probe)."""
    import os
    import time
    os.makedirs(probe_dir, exist_ok=True)
    marker = os.path.join(probe_dir, f'{x}.running')
    open(marker, 'w').close()
    time.sleep(1.0)
    seen = len([n for n in os.listdir(probe_dir) if n.endswith('.running')])
    with open(os.path.join(probe_dir, f'{x}.seen'), 'w') as f:
        f.write(str(seen))
    os.remove(marker)
    return x * x


@dsl.component(base_image=IMAGE)
def total(values: List[int]) -> int:
    return sum(values)


@dsl.component(base_image=IMAGE)
def write_number(x: int, out: Output[Dataset]):
    with open(out.path, 'w') as f:
        f.write(str(x))
    out.metadata['x'] = x


@dsl.component(base_image=IMAGE)
def merge(ins: Input[List[Dataset]]) -> str:
    return ','.join(open(d.path).read() for d in ins)


@dsl.component(base_image=IMAGE)
def pick(a: int, b: int) -> str:
    return f'{a}:{b}'


@dsl.component(base_image=IMAGE)
def join_words(words: List[str]) -> str:
    return '+'.join(words)


@dsl.pipeline(name='weir-exec-parallelfor')
def parallelfor_pipeline(probe_dir: str, n: int = 3) -> NamedTuple(
        'Outputs', [('total', int), ('merged', str), ('picked', str)]):
    lst = make_list(n=n)
    with dsl.ParallelFor(lst.output, parallelism=2) as item:
        sq = square(x=item, probe_dir=probe_dir)
    tot = total(values=dsl.Collected(sq.output))
    with dsl.ParallelFor([10, 20]) as v:
        w = write_number(x=v)
    m = merge(ins=dsl.Collected(w.outputs['out']))
    with dsl.ParallelFor([{'a': 1, 'b': 10}, {'a': 2, 'b': 20}]) as d:
        p = pick(a=d.a, b=d.b)
    j = join_words(words=dsl.Collected(p.output))
    outputs = NamedTuple('Outputs', [('total', int), ('merged', str), ('picked', str)])
    return outputs(tot.output, m.output, j.output)


# --------------------------------------------------------------------------------------------
# f: ExitHandler with PipelineTaskFinalStatus


@dsl.component(base_image=IMAGE)
def work(fail: bool):
    if fail:
        raise RuntimeError('requested failure')
    print('work done')


@dsl.component(base_image=IMAGE)
def cleanup(status: PipelineTaskFinalStatus, note: str) -> str:
    import json
    print('note', note, 'state', status.state)
    return json.dumps({'state': status.state, 'note': note,
                       'task': status.pipeline_task_name,
                       'job': status.pipeline_job_resource_name,
                       'error_code': status.error_code, 'error_message': status.error_message})


@dsl.pipeline(name='weir-exec-exit-handler')
def exit_handler_pipeline(fail: bool = False):
    exit_task = cleanup(note='bye')
    with dsl.ExitHandler(exit_task, name='main-block'):
        work(fail=fail)


# --------------------------------------------------------------------------------------------
# g: container components


@dsl.container_component
def echo_times(msg: str, times: int, out_text: OutputPath(str)):
    return dsl.ContainerSpec(
        image=SH_IMAGE,
        command=['sh', '-c'],
        args=['mkdir -p "$(dirname "$2")" && for i in $(seq "$1"); do echo "$0"; done > "$2"',
              msg, times, out_text],
    )


@dsl.container_component
def write_dataset(text: str, ds: Output[Dataset]):
    return dsl.ContainerSpec(
        image=SH_IMAGE,
        command=['sh', '-c', 'mkdir -p "$(dirname "$1")" && printf "%s" "$0" > "$1"'],
        args=[text, ds.path],
    )


@dsl.container_component
def show_args(ds: Input[Dataset], out: OutputPath(str), flag: Optional[str] = None):
    """Writes its own argv (after the two paths), then the dataset, into `out`."""
    return dsl.ContainerSpec(
        image=SH_IMAGE,
        command=['sh', '-c',
                 'out="$0"; ds="$1"; shift; mkdir -p "$(dirname "$out")"; '
                 '{ printf "[%s]" "$@"; printf "\\n"; cat "$ds"; } > "$out"'],
        args=[out, ds.path,
              dsl.IfPresentPlaceholder(input_name='flag', then=['--flag', flag]),
              dsl.ConcatPlaceholder(['uri=', ds.uri])],
    )


@dsl.pipeline(name='weir-exec-container')
def container_pipeline(msg: str = 'hi', times: int = 2):
    e = echo_times(msg=msg, times=times)
    w = write_dataset(text=e.outputs['out_text'])
    with_flag = show_args(ds=w.outputs['ds'], flag='on')
    with_flag.set_display_name('with-flag')
    without_flag = show_args(ds=w.outputs['ds'])
    without_flag.set_display_name('without-flag')


# --------------------------------------------------------------------------------------------
# h: metrics, environment variables, resources


@dsl.component(base_image=IMAGE)
def evaluate_metrics(threshold: float, metrics: Output[Metrics],
                     cm: Output[ClassificationMetrics]) -> float:
    metrics.log_metric('accuracy', 0.92)
    metrics.log_metric('threshold', threshold)
    cm.log_confusion_matrix(['a', 'b'], [[5, 1], [2, 7]])
    return 0.92


@dsl.component(base_image=IMAGE)
def read_env(name: str) -> str:
    import os
    return os.environ.get(name, '<unset>')


@dsl.pipeline(name='weir-exec-metrics')
def metrics_pipeline(threshold: float = 0.5):
    e = evaluate_metrics(threshold=threshold)
    e.set_caching_options(enable_caching=False)
    r = read_env(name='MODE').after(e)
    r.set_env_variable('MODE', 'weir-test').set_cpu_limit('1').set_memory_limit('512Mi')


# h: caching. Each counting step appends a line to a file in `counter_dir`, so the test can tell
# how many times a step really ran.


@dsl.component(base_image=IMAGE)
def count_cached(counter_dir: str) -> str:
    import os
    path = os.path.join(counter_dir, 'cached')
    with open(path, 'a') as f:
        f.write('ran\n')
    return 'execution-%d' % len(open(path).readlines())


@dsl.component(base_image=IMAGE)
def count_uncached(counter_dir: str) -> str:
    import os
    path = os.path.join(counter_dir, 'uncached')
    with open(path, 'a') as f:
        f.write('ran\n')
    return 'execution-%d' % len(open(path).readlines())


@dsl.component(base_image=IMAGE)
def count_keyed(counter_dir: str, x: int) -> str:
    import os
    path = os.path.join(counter_dir, 'keyed')
    with open(path, 'a') as f:
        f.write('ran\n')
    return 'x=%d execution-%d' % (x, len(open(path).readlines()))


@dsl.component(base_image=IMAGE)
def count_dataset(counter_dir: str, ds: Output[Dataset]):
    import os
    path = os.path.join(counter_dir, 'dataset')
    with open(path, 'a') as f:
        f.write('ran\n')
    with open(ds.path, 'w') as f:
        f.write('dataset-%d' % len(open(path).readlines()))


@dsl.component(base_image=IMAGE)
def read_dataset(ds: Input[Dataset]) -> str:
    with open(ds.path) as f:
        return f.read()


def make_caching_pipeline(cache_key: str):
    """The caching pipeline with a custom cache key unique to the caller (keys are global)."""

    @dsl.pipeline(name='weir-exec-caching')
    def caching_pipeline(counter_dir: str, x: int = 1):
        count_cached(counter_dir=counter_dir)  # caching is on by default
        u = count_uncached(counter_dir=counter_dir)
        u.set_caching_options(enable_caching=False)
        k = count_keyed(counter_dir=counter_dir, x=x)
        k.set_caching_options(enable_caching=True, cache_key=cache_key)
        # A cached artifact output feeds a step that is not cached.
        d = count_dataset(counter_dir=counter_dir)
        read_dataset(ds=d.outputs['ds']).set_caching_options(enable_caching=False)

    return caching_pipeline


# h: retry policy on a step that fails the first time


@dsl.component(base_image=IMAGE)
def fail_first_time(marker: str) -> str:
    import os
    if not os.path.exists(marker):
        open(marker, 'w').close()
        raise RuntimeError('first attempt fails on purpose')
    print('second attempt succeeds')
    return 'recovered'


@dsl.pipeline(name='weir-exec-retry-policy')
def retry_policy_pipeline(marker: str):
    t = fail_first_time(marker=marker)
    t.set_retry(num_retries=2, backoff_duration='1s', backoff_factor=1.0,
                backoff_max_duration='5s')
    t.set_caching_options(enable_caching=False)


# --------------------------------------------------------------------------------------------
# i: a pipeline used as a component, and dsl.importer


@dsl.component(base_image=IMAGE)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image=IMAGE)
def read_imported(ds: Input[Dataset]) -> str:
    import json
    with open(ds.path) as f:
        content = f.read()
    return json.dumps({'content': content, 'uri': ds.uri, 'metadata': ds.metadata})


@dsl.pipeline(name='weir-exec-inner')
def inner(x: int) -> int:
    s1 = add(a=x, b=1)
    s2 = add(a=s1.output, b=10)
    return s2.output


@dsl.pipeline(name='weir-exec-nested-importer')
def nested_importer_pipeline(uri: str, x: int = 1) -> int:
    n = inner(x=x)
    imp = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=False,
                       metadata={'source': 'sdk-test'})
    read_imported(ds=imp.output)
    return n.output


# --------------------------------------------------------------------------------------------
# Run control: termination, retry of a failed run


@dsl.container_component
def sleep_long(pid_file: str):
    """Writes its pid, then becomes `sleep 60` (exec keeps the pid)."""
    return dsl.ContainerSpec(
        image=SH_IMAGE,
        command=['sh', '-c', 'echo $$ > "$0"; echo sleeping; exec sleep 60'],
        args=[pid_file],
    )


@dsl.pipeline(name='weir-exec-sleeper')
def sleeper_pipeline(pid_file: str):
    sleep_long(pid_file=pid_file).set_caching_options(enable_caching=False)


@dsl.component(base_image=IMAGE)
def first_step(counter: str) -> str:
    with open(counter, 'a') as f:
        f.write('ran\n')
    return 'first-done'


@dsl.component(base_image=IMAGE)
def gate(flag: str, upstream: str) -> str:
    import os
    if not os.path.exists(flag):
        raise RuntimeError(f'flag file {flag} is missing')
    return f'{upstream}+gate-done'


@dsl.pipeline(name='weir-exec-retry-run')
def retry_run_pipeline(counter: str, flag: str) -> str:
    f = first_step(counter=counter)
    f.set_caching_options(enable_caching=False)
    g = gate(flag=flag, upstream=f.output)
    g.set_caching_options(enable_caching=False)
    return g.output


# --------------------------------------------------------------------------------------------
# Bad input and failing steps


@dsl.component(base_image=IMAGE)
def needs(x: int) -> int:
    return x


REQUIRED_PARAMETER = 'required_value'


@dsl.pipeline(name='weir-exec-required-param')
def required_param_pipeline(required_value: int) -> int:
    return needs(x=required_value).output


@dsl.container_component
def exit_nonzero():
    return dsl.ContainerSpec(image=SH_IMAGE, command=['sh', '-c', 'echo "about to fail"; exit 37'])


@dsl.pipeline(name='weir-exec-exit-code')
def exit_code_pipeline():
    exit_nonzero().set_caching_options(enable_caching=False)


MISSING_EXECUTABLE = 'weir-no-such-executable-4711'


@dsl.container_component
def run_missing():
    return dsl.ContainerSpec(image=SH_IMAGE, command=[MISSING_EXECUTABLE], args=['--help'])


@dsl.pipeline(name='weir-exec-missing-executable')
def missing_executable_pipeline():
    run_missing().set_caching_options(enable_caching=False)


@dsl.container_component
def chatter(token: str):
    return dsl.ContainerSpec(
        image=SH_IMAGE,
        command=['sh', '-c', 'echo "to stdout $0"; echo "to stderr $0" >&2'],
        args=[token])


@dsl.pipeline(name='weir-exec-logs')
def logs_pipeline(token: str):
    chatter(token=token).set_caching_options(enable_caching=False)
