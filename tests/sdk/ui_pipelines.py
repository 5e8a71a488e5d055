"""Pipelines the web UI's browser tests run (tests/sdk/test_ui.py), compiled at test time."""
from typing import List

from kfp import dsl
from kfp.dsl import ClassificationMetrics, HTML, Markdown, Metrics, Output


@dsl.component(base_image='python:3.11')
def add(a: int, b: float) -> float:
    print(f'adding {a} and {b}')
    return a + b


@dsl.component(base_image='python:3.11')
def evaluate(x: float, metrics: Output[Metrics], curves: Output[ClassificationMetrics],
             page: Output[HTML], notes: Output[Markdown]):
    metrics.log_metric('accuracy', x / 10)
    metrics.log_metric('loss', 1 / (1 + x))
    curves.log_confusion_matrix(['cat', 'dog'], [[8, 2], [1, 9]])
    curves.log_roc_curve([0.0, 0.1, 0.4, 1.0], [0.0, 0.6, 0.9, 1.0], [1.0, 0.8, 0.4, 0.0])
    # A page whose script tries to reach weir: the sandboxed frame must stop it.
    with open(page.path, 'w') as f:
        f.write('<h1 id="h">report</h1><script>'
                'var out = [];'
                'try { out.push("cookie:" + document.cookie); } catch (e) { out.push("cookie-" + e.name); }'
                'try { parent.document.title = "pwned"; out.push("parent:reached"); }'
                ' catch (e) { out.push("parent-" + e.name); }'
                'document.getElementById("h").setAttribute("data-tried", out.join(" "));'
                '</script>')
    with open(notes.path, 'w') as f:
        f.write('# Notes\n\n*fine* <script>window.__md = 1</script>\n')


@dsl.pipeline(name='weir-ui-demo', description='A chain, a loop and an evaluation')
def demo_pipeline(a: int = 1, b: float = 2.5, tags: List[str] = ['x'], flag: bool = True):
    first = add(a=a, b=b)
    with dsl.ParallelFor([1, 2, 3]) as item:
        add(a=item, b=first.output)
    evaluate(x=first.output)


@dsl.component(base_image='python:3.11')
def explode(message: str):
    print('about to fail')
    raise RuntimeError(message)


@dsl.pipeline(name='weir-ui-failing')
def failing_pipeline(message: str = 'the data is bad'):
    explode(message=message)


@dsl.component(base_image='python:3.11')
def wait(seconds: int):
    import time
    for tick in range(seconds * 2):
        print(f'tick {tick}', flush=True)
        time.sleep(0.5)


@dsl.pipeline(name='weir-ui-slow')
def slow_pipeline(seconds: int = 120):
    wait(seconds=seconds)
