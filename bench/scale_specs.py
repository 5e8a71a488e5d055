"""Compiles the pipelines whose specs the API-scale example (crates/weir/examples/scale.rs) loads
into its runs: a 20-step and a 200-step pipeline of ordinary lightweight Python components
(SDK defaults: the `pip install kfp` preamble, extra packages for some, artifacts, metrics, a
condition per branch), written to bench/scale-20.yaml and bench/scale-200.yaml.

    .venv/bin/python bench/scale_specs.py

The YAML files are committed so the example needs no Python; run this again after a kfp upgrade.
"""
from pathlib import Path
from typing import NamedTuple

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

HERE = Path(__file__).resolve().parent


@dsl.component(base_image='python:3.11', packages_to_install=['pandas==2.2.3'])
def load_data(source: str, rows: int, seed: int, data: Output[Dataset]):
    """Reads a sample of the source table and writes it as CSV."""
    import random

    import pandas as pd

    random.seed(seed)
    frame = pd.DataFrame({
        'x1': [random.random() for _ in range(rows)],
        'x2': [random.gauss(0, 1) for _ in range(rows)],
        'label': [random.randint(0, 1) for _ in range(rows)],
    })
    frame['source'] = source
    frame.to_csv(data.path, index=False)
    data.metadata['rows'] = rows
    data.metadata['source'] = source


@dsl.component(base_image='python:3.11', packages_to_install=['pandas==2.2.3'])
def preprocess(data: Input[Dataset], scale: float, drop_na: bool, out: Output[Dataset]):
    """Scales the features and drops incomplete rows."""
    import pandas as pd

    frame = pd.read_csv(data.path)
    if drop_na:
        frame = frame.dropna()
    for column in ('x1', 'x2'):
        mean, std = frame[column].mean(), frame[column].std() or 1.0
        frame[column] = (frame[column] - mean) / std * scale
    frame.to_csv(out.path, index=False)
    out.metadata['rows'] = len(frame)


@dsl.component(base_image='python:3.11', packages_to_install=['pandas==2.2.3', 'scikit-learn==1.5.2'])
def train(data: Input[Dataset], learning_rate: float, epochs: int, model: Output[Model], metrics: Output[Metrics]):
    """Fits a logistic regression and logs its training metrics."""
    import pickle

    import pandas as pd
    from sklearn.linear_model import SGDClassifier

    frame = pd.read_csv(data.path)
    features, labels = frame[['x1', 'x2']], frame['label']
    classifier = SGDClassifier(loss='log_loss', learning_rate='constant', eta0=learning_rate, max_iter=epochs)
    classifier.fit(features, labels)
    with open(model.path, 'wb') as f:
        pickle.dump(classifier, f)
    model.metadata['framework'] = 'scikit-learn'
    metrics.log_metric('train_accuracy', float(classifier.score(features, labels)))
    metrics.log_metric('epochs', epochs)


@dsl.component(base_image='python:3.11', packages_to_install=['pandas==2.2.3', 'scikit-learn==1.5.2'])
def evaluate(model: Input[Model], data: Input[Dataset], threshold: float) -> NamedTuple('Outputs', [('accuracy', float), ('passed', bool)]):
    """Scores the model on the data and compares it with the threshold."""
    import pickle
    from collections import namedtuple

    import pandas as pd

    with open(model.path, 'rb') as f:
        classifier = pickle.load(f)
    frame = pd.read_csv(data.path)
    accuracy = float(classifier.score(frame[['x1', 'x2']], frame['label']))
    outputs = namedtuple('Outputs', ['accuracy', 'passed'])
    return outputs(accuracy, accuracy >= threshold)


@dsl.component(base_image='python:3.11')
def report(name: str, accuracy: float, model: Input[Model]) -> str:
    """A line for the run's summary."""
    return f'{name}: accuracy {accuracy:.3f}, model {model.uri}'


def scale_pipeline(steps: int):
    """Branches of five steps (load, preprocess, train, evaluate, and report under a condition);
    each branch starts after the previous branch's evaluation."""
    assert steps % 5 == 0

    @dsl.pipeline(name=f'scale-{steps}-steps', description=f'{steps // 5} train-and-evaluate branches')
    def pipeline(source: str = 'gs://bucket/table', rows: int = 1000, learning_rate: float = 0.01,
                 epochs: int = 20, threshold: float = 0.6) -> float:
        evaluated = None
        for branch in range(steps // 5):
            loaded = load_data(source=source, rows=rows, seed=branch)
            if evaluated is not None:
                loaded.after(evaluated)
            prepared = preprocess(data=loaded.outputs['data'], scale=1.0, drop_na=True)
            trained = train(data=prepared.outputs['out'], learning_rate=learning_rate, epochs=epochs)
            evaluated = evaluate(model=trained.outputs['model'], data=prepared.outputs['out'], threshold=threshold)
            with dsl.If(evaluated.outputs['passed'] == True):  # noqa: E712 (a pipeline condition)
                report(name=f'branch-{branch}', accuracy=evaluated.outputs['accuracy'], model=trained.outputs['model'])
        return evaluated.outputs['accuracy']
    return pipeline


def main():
    for steps in (20, 200):
        path = HERE / f'scale-{steps}.yaml'
        compiler.Compiler().compile(scale_pipeline(steps), str(path))
        print(f'{path.relative_to(HERE.parent)}: {path.stat().st_size} bytes')


if __name__ == '__main__':
    main()
