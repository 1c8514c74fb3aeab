"""Benchmark data-parallel training: throughput at 1 and 2 replicas for each app's model.

    python bench/scale.py                  # every app's default model, about 3 minutes
    python bench/scale.py --apps textgen --steps 60
    python bench/scale.py --quick          # check the script works, in a minute

For each app it builds the app's default model (the app's own builder; for
textgen the LSTM-256 it had when the README's table was measured) and
trains it on synthetic batches of the app's shapes with
``common.models.training.fit_distributed``, the loop the apps use under a strategy:

- ``1 device``: no strategy (TensorFlow's default), batch = the app's default;
- ``1 device, 2x batch``: the same, with the batch two replicas take together:
  what a bigger batch alone gains, without a second replica;
- ``mirrored x2``: ``MirroredStrategy`` over 2 devices (2 GPUs, or the CPU split
  in two), the same batch per replica, so twice the global batch;
- ``2 workers``: ``MultiWorkerMirroredStrategy``, two processes on this machine
  talking over 127.0.0.1 (what two machines would do over a network).

Throughput is examples per second after a few warm-up steps; scaling
efficiency is throughput at 2 replicas over twice that at 1 (100% = perfect
linear scaling). With a GPU it adds a GPU-vs-CPU row per app and says whether
the recurrent layers ran cuDNN's kernel. Every configuration runs in a fresh
process, because devices are fixed when TensorFlow starts. Timings depend on
the machine and its load: quote ratios from one run.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

APPS = ("forecast", "textgen", "sentiment", "anomaly")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--apps", nargs="+", choices=APPS, default=list(APPS))
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run (default: 40)")
    parser.add_argument(
        "--quick", action="store_true", help="5 timed steps: check the script works"
    )
    parser.add_argument("--measure", nargs=2, metavar=("APP", "KIND"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- one measurement (in its own process)


def model_and_batch(app, per_replica, replicas):
    """The app's default model, compiled, and one synthetic global batch of its shapes."""
    import numpy as np

    from apps import anomaly, forecast, sentiment, textgen
    from common.tasks import charlm, detectors

    rng = np.random.default_rng(0)
    size = per_replica * replicas
    if app == "forecast":
        config = forecast.Config()
        inputs = rng.normal(size=(size, config.window, 1)).astype("float32")
        return forecast.build_model(config), inputs, rng.normal(size=(size, 1)).astype("float32")
    if app == "textgen":
        config = textgen.Config(cell="lstm")  # the model the README's scaling table measured
        vocabulary = charlm.CharacterVocabulary.from_text("".join(chr(32 + i) for i in range(64)))
        ids = rng.integers(1, vocabulary.size, size=(size, config.seq_length + 1)).astype("int32")
        return textgen.build_model(vocabulary, config), ids[:, :-1], ids[:, 1:]
    if app == "sentiment":
        config = sentiment.Config()
        ids = rng.integers(2, 20000, size=(size, 24)).astype("int64")  # a typical snippet: 24 words
        model = sentiment.build_model(config, 20000, seed=42)
        return model, ids, rng.integers(0, 2, size=(size,)).astype("float32")
    config = anomaly.Config()
    detector = detectors.BidirectionalLSTM(config.window, config.units)
    model = detector.build(1)
    detector.compile(model)
    segments = rng.normal(size=(size, config.window + 2, 1)).astype("float32")
    middle = segments[:, 1:-1]
    return model, middle, (segments[:, -1], segments[:, 0], middle)


DEFAULT_BATCH = {"forecast": 64, "textgen": 32, "sentiment": 32, "anomaly": 64}


def uses_cudnn(model, inputs):
    """Whether the traced training step holds a cuDNN RNN kernel (only a GPU has one)."""
    import tensorflow as tf

    step = tf.function(lambda batch: model(batch, training=True))
    graph = step.get_concrete_function(tf.constant(inputs[:2])).graph.as_graph_def()
    nodes = list(graph.node) + [node for f in graph.library.function for node in f.node_def]
    return any(node.op.startswith("CudnnRNN") for node in nodes)


def measure(app, kind, steps):
    """Train ``steps`` timed steps (after 3 warm-up steps) under ``kind``; print a JSON line.

    ``kind`` is a strategy (see common.scale.distribute), optionally ``-cpu`` (hide the
    GPUs) or ``-2x`` (twice the batch).
    """
    import common
    import keras
    import tensorflow as tf
    from common.scale import distribute
    from common.models.training import fit_distributed

    device = "cpu" if kind.endswith("-cpu") else None
    batch = DEFAULT_BATCH[app] * (2 if kind.endswith("-2x") else 1)
    label, kind = kind, kind.removesuffix("-cpu").removesuffix("-2x")
    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    distribution = distribute.setup(kind, cpu_devices=2)
    common.set_seed(0)
    with distribution.scope():
        model, inputs, targets = model_and_batch(app, batch, distribution.replicas)
    batch = tf.data.Dataset.from_tensors((inputs, targets)).repeat()
    validation = tf.data.Dataset.from_tensors((inputs, targets))
    finished = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            finished.append(time.perf_counter())

    warm_up = 3
    fit_distributed(
        model,
        batch,
        validation,
        strategy=distribution.strategy,
        epochs=1,
        steps_per_epoch=warm_up + steps,
        patience=99,
        callbacks=[Clock()],
    )
    seconds = finished[-1] - finished[warm_up - 1]
    result = {
        "app": app,
        "kind": label,
        "replicas": distribution.replicas,
        "worker": distribution.worker_index,
        "global_batch": len(inputs),
        "examples_per_second": steps * len(inputs) / seconds,
        "device": "GPU" if tf.config.list_logical_devices("GPU") else "CPU",
    }
    if result["device"] == "GPU":
        result["cudnn"] = uses_cudnn(model, inputs)
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- the table


def run_config(app, kind, steps):
    """One configuration in fresh processes (two for ``multiworker``); its worker 0's result."""
    command = [sys.executable, __file__, "--measure", app, kind, "--steps", str(steps)]
    if kind == "multiworker":
        import tempfile

        from common.scale.distribute import start_local_cluster

        with tempfile.TemporaryDirectory() as logs:
            # Two processes on one GPU must not each take all its memory.
            environment = {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
            processes = start_local_cluster(command, 2, logs=logs, environment=environment)
            codes = [process.wait(timeout=900) for process in processes]
            text = (Path(logs) / "worker-0.log").read_text()
    else:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        codes, text = [done.returncode], done.stdout + done.stderr
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if any(codes) or not lines:
        raise SystemExit(f"{app} {kind} failed:\n{text[-2000:]}")
    return json.loads(lines[-1])


def main(argv=None):
    args = parse_args(argv)
    steps = 5 if args.quick else args.steps
    if args.measure:
        return measure(*args.measure, steps)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    gpus = _gpu_count()
    print(
        f"Training throughput (examples/s, {steps} timed steps after 3 warm-up), "
        f"{os.cpu_count()} CPU cores, {gpus} GPU(s); same batch per replica, so 2 replicas "
        "take twice the global batch:\n"
    )
    header = (
        "| app | batch per replica | 1 device | 1 device, 2x batch | mirrored | efficiency "
        "| 2 workers | efficiency |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    gpu_rows = []
    for app in args.apps:
        one = run_config(app, "none", steps)
        doubled = run_config(app, "none-2x", steps)
        mirrored = run_config(app, "mirrored", steps)
        workers = run_config(app, "multiworker", steps)
        base = one["examples_per_second"]

        def efficiency(result):
            return f"{100 * result['examples_per_second'] / (result['replicas'] * base):.0f}%"

        def speed(result):  # with the replicas it ran on, which need not be 2 (one GPU: 1)
            return f"{result['examples_per_second']:,.0f} ({result['replicas']} replicas)"

        print(
            f"| {app} | {DEFAULT_BATCH[app]} | {base:,.0f} | {doubled['examples_per_second']:,.0f} "
            f"| {speed(mirrored)} | {efficiency(mirrored)} | {speed(workers)} "
            f"| {efficiency(workers)} |",
            flush=True,
        )
        if gpus:
            cpu = run_config(app, "none-cpu", steps)
            gpu_rows.append((app, one, cpu))
    if gpu_rows:
        print("\nOne GPU against this machine's CPU, same batch:\n")
        print("| app | GPU | CPU | GPU / CPU | cuDNN kernel |")
        print("|---|---|---|---|---|")
        for app, gpu, cpu in gpu_rows:
            ratio = gpu["examples_per_second"] / cpu["examples_per_second"]
            print(
                f"| {app} | {gpu['examples_per_second']:,.0f} | {cpu['examples_per_second']:,.0f} "
                f"| {ratio:.1f}x | {'yes' if gpu.get('cudnn') else 'NO'} |"
            )
    print(
        "\nEfficiency = throughput at N replicas / (N x throughput on 1 device). On a CPU the "
        "replicas share the same cores: compare the mirrored column with '1 device, 2x batch' "
        "(the same global batch on one device) to see what the second replica itself adds."
    )
    return 0


def _gpu_count():
    """GPUs TensorFlow would see, asked in a child process so this one never starts TensorFlow."""
    probe = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return int(done.stdout.strip() or 0)


if __name__ == "__main__":
    sys.exit(main())
