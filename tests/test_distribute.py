"""Data-parallel training (common.scale.distribute, common.models.training.fit_distributed), tested on this CPU.

Logical CPU devices must be set up before TensorFlow runs its first operation,
and a multi-worker cluster is several processes, so those tests start fresh
Python processes; they talk only to 127.0.0.1.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import common
from common.scale import distribute
from common.models.training import ResumeError, fit_distributed
from conftest import REPO

PYTHON = sys.executable


def run_python(code, timeout=240):
    """Run ``code`` in a fresh Python at the repository root; return its stdout (it must succeed)."""
    result = subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# ---------------------------------------------------------------- TF_CONFIG


def test_read_tf_config_gives_the_workers_and_this_index():
    workers = ["10.0.0.1:2222", "10.0.0.2:2222"]
    text = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": 1}})
    assert distribute.read_tf_config(text) == (workers, 1)


def test_read_tf_config_counts_a_chief_as_worker_0():
    text = json.dumps(
        {
            "cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
            "task": {"type": "worker", "index": 1},
        }
    )
    assert distribute.read_tf_config(text) == (["a:1", "b:1", "c:1"], 2)


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, "TF_CONFIG unset"),
        ("{not json", "JSONDecodeError"),
        ('{"cluster": {}}', "no 'task'"),
        ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', "no 'worker'"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
            "index within",
        ),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "task to be"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
        ('{"cluster": {"worker": ["a:abc"]}, "task": {"type": "worker", "index": 0}}', "port 1 to"),
        (
            '{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
            "different",
        ),
        ("[1]", "TypeError"),
    ],
)
def test_read_tf_config_refuses_a_bad_cluster_saying_what_it_expected(text, expected):
    with pytest.raises(ValueError, match="Expected") as raised:
        distribute.read_tf_config(text)
    assert expected in str(raised.value)


def test_mixed_precision_needs_a_gpu():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="Expected a GPU for mixed precision"):
        distribute.setup("none", mixed_precision=True)


def test_setup_none_is_the_default_strategy_with_one_replica():
    distribution = distribute.setup("none")
    assert distribution.strategy is tf.distribute.get_strategy()
    assert (distribution.replicas, distribution.global_batch(64), distribution.custom_loop) == (
        1,
        64,
        False,
    )


def test_local_tf_configs_name_one_cluster_and_each_index():
    configs = [json.loads(text) for text in distribute.local_tf_configs(3)]
    assert [config["task"]["index"] for config in configs] == [0, 1, 2]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert all(config["cluster"]["worker"] == addresses for config in configs)


# ---------------------------------------------------------------- the training loop on one device


def small_regression(seed=1, units=8):
    keras.utils.set_random_seed(seed)
    model = common.build_many_to_one((10, 1), 1, cell="lstm", units=units)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def regression_data():
    inputs = np.random.default_rng(0).normal(size=(256, 10, 1)).astype("float32")
    return inputs, inputs.sum(axis=1)


def test_fit_distributed_matches_keras_fit_on_one_device():
    """The same batches in the same order: our loop's losses are Keras' to float precision."""
    inputs, targets = regression_data()
    train = tf.data.Dataset.from_tensor_slices((inputs[:200], targets[:200])).batch(32)
    validation = tf.data.Dataset.from_tensor_slices((inputs[200:], targets[200:])).batch(32)
    keras_history = small_regression().fit(
        train, validation_data=validation, epochs=3, shuffle=False, verbose=0
    )
    ours = fit_distributed(small_regression(), train, validation, epochs=3, patience=10)
    for name in ("loss", "val_loss"):
        np.testing.assert_allclose(ours.history[name], keras_history.history[name], rtol=1e-5)
    assert ours.history["loss"][-1] < ours.history["loss"][0]  # it learns


def test_fit_distributed_keeps_the_best_epoch_and_stops_early():
    inputs, targets = regression_data()
    model = small_regression()
    model.optimizer.learning_rate.assign(0.3)  # far too large: validation loss soon gets worse
    history = fit_distributed(
        model,
        (inputs[:200], targets[:200]),
        (inputs[200:], targets[200:]),
        epochs=30,
        batch_size=32,
        patience=2,
    ).history
    best = int(np.nanargmin(history["val_loss"]))
    assert len(history["loss"]) == best + 3  # stopped two epochs after the best
    restored = model.evaluate(inputs[200:], targets[200:], verbose=0)
    assert restored == pytest.approx(history["val_loss"][best], rel=1e-4)


def test_fit_distributed_resumes_from_its_checkpoint_and_refuses_other_settings(tmp_path):
    inputs, targets = regression_data()
    data = (inputs[:200], targets[:200]), (inputs[200:], targets[200:])
    options = dict(batch_size=50, patience=10, backup=tmp_path / "backup", fingerprint="run A")
    whole = fit_distributed(small_regression(), *data, epochs=4, **options).history
    assert (tmp_path / "backup" / "checkpoint").is_file()
    # Started again with the same folder: the finished run is restored, not trained again.
    model = small_regression(seed=7)
    again = fit_distributed(model, *data, epochs=4, **options).history
    assert again == whole
    assert model.evaluate(*data[1], verbose=0) == pytest.approx(min(whole["val_loss"]), rel=1e-4)
    # Other settings (here a wider model): refused by name, before TensorFlow restores anything.
    with pytest.raises(ResumeError, match="same settings"):
        other = {**options, "fingerprint": "run B"}
        fit_distributed(small_regression(units=16), *data, epochs=4, **other)


class StopAtEpoch(keras.callbacks.Callback):
    """Ctrl-C, or a machine lost, at the start of an epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    """Resumed after epoch 2, the run ends as if never stopped: weights and optimizer restored."""
    inputs, targets = regression_data()
    batches = tf.data.Dataset.from_tensor_slices((inputs[:192], targets[:192])).batch(32)
    validation = (inputs[192:], targets[192:])
    options = dict(epochs=5, patience=10, backup=tmp_path / "backup", fingerprint="run")
    whole = fit_distributed(small_regression(), batches, validation, epochs=5, patience=10)
    with pytest.raises(KeyboardInterrupt):
        fit_distributed(
            small_regression(), batches, validation, callbacks=[StopAtEpoch(2)], **options
        )
    saved = sorted(path.name for path in (tmp_path / "backup").glob("*.index"))
    assert saved == ["ckpt-1.index", "ckpt-2.index"]
    resumed = fit_distributed(small_regression(seed=9), batches, validation, **options)
    for name in ("loss", "val_loss"):
        np.testing.assert_allclose(resumed.history[name], whole.history[name], rtol=1e-5)


def test_a_damaged_checkpoint_is_one_clear_error(tmp_path):
    inputs, targets = regression_data()
    data = (inputs[:200], targets[:200]), (inputs[200:], targets[200:])
    options = dict(batch_size=50, patience=10, backup=tmp_path / "backup", fingerprint="run")
    fit_distributed(small_regression(), *data, epochs=2, **options)
    for path in (tmp_path / "backup").glob("ckpt-2.*"):
        path.write_bytes(b"damaged")
    with pytest.raises(ResumeError, match="Expected a readable checkpoint"):
        fit_distributed(small_regression(), *data, epochs=2, **options)


def test_fit_distributed_stops_at_its_time_budget():
    inputs, targets = regression_data()
    history = fit_distributed(
        small_regression(),
        (inputs[:200], targets[:200]),
        (inputs[200:], targets[200:]),
        epochs=50,
        batch_size=8,
        patience=50,
        max_seconds=0.0,
    ).history
    assert len(history["loss"]) == 1  # stopped after the first step


# ---------------------------------------------------------------- two replicas on two CPU devices


@pytest.mark.slow  # processes of their own
def test_mirrored_on_two_cpu_devices_takes_the_single_device_step():
    """Same first step as one device on the same global batch; losses within 1e-4.

    SGD with learning rate 1 makes a step's weight change minus the (clipped)
    gradient; targets of 0 or 50 make the gradient's norm far above the clip of
    1, so clipping each replica's share instead of the sum would show. The
    global batch of 45 splits 23 + 22: uneven, as an epoch's last batch is.
    """
    output = run_python(
        """
        import json, keras, numpy as np, tensorflow as tf
        import common
        from common.scale import distribute
        from common.models.training import fit_distributed

        mirrored = distribute.setup("mirrored", cpu_devices=2)
        inputs = np.random.default_rng(0).integers(1, 50, size=(90, 7))
        targets = 50 * (inputs.mean(axis=1) > 25).astype("float32")  # large: clipping must act
        data = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(45)

        def run(strategy, learning_rate, epochs):
            keras.utils.set_random_seed(3)
            with strategy.scope():
                model = common.build_many_to_one(
                    (7,), 1, cell="gru", units=8, vocab_size=50, embedding_dim=4,
                )
                optimizer = keras.optimizers.SGD(learning_rate, clipnorm=1.0)
                model.compile(optimizer=optimizer, loss="mse")
            before = [w.copy() for w in model.get_weights()]
            history = fit_distributed(
                model, data.take(1) if epochs == 0 else data, data, strategy=strategy,
                epochs=max(epochs, 1), patience=99,
            )
            steps = [b - a for a, b in zip(before, model.get_weights())]
            return steps, history.history

        one_step_single, _ = run(tf.distribute.get_strategy(), 1.0, 0)
        one_step_mirrored, _ = run(mirrored.strategy, 1.0, 0)
        _, single = run(tf.distribute.get_strategy(), 0.01, 5)
        _, both = run(mirrored.strategy, 0.01, 5)
        print(json.dumps({
            "replicas": mirrored.replicas,
            "step_difference": max(float(np.abs(a - b).max()) for a, b in zip(one_step_single, one_step_mirrored)),
            "step_size": max(float(np.abs(a).max()) for a in one_step_single),
            "single": single, "mirrored": both,
        }))
        """
    )
    found = json.loads(output.strip().splitlines()[-1])
    assert found["replicas"] == 2
    assert 1e-3 < found["step_size"] <= 1.0 + 1e-6  # the step moved the weights, clipped
    assert found["step_difference"] < 1e-6
    for name in ("loss", "val_loss"):
        np.testing.assert_allclose(found["mirrored"][name], found["single"][name], atol=1e-4)
    assert found["single"]["loss"][-1] < found["single"]["loss"][0]


@pytest.mark.slow  # processes of their own
@pytest.mark.parametrize("app", ["forecast", "textgen", "sentiment", "anomaly"])
def test_every_app_trains_mirrored_on_two_cpu_devices(app, tmp_path):
    result = subprocess.run(
        [
            PYTHON,
            f"apps/{app}.py",
            "--quick",
            "--distribute",
            "mirrored",
            "--out",
            tmp_path / "run",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    replicas = len(tf.config.list_physical_devices("GPU")) or 2  # every GPU, or the CPU in two
    assert (
        f"on {replicas} replicas" in result.stdout and f"per replica x {replicas}" in result.stdout
    )
    trained_on = json.loads((tmp_path / "run" / "metrics.json").read_text())["trained_on"]
    assert trained_on["strategy"] == "mirrored" and trained_on["replicas"] == replicas
    assert trained_on["global_batch"] == 2 * trained_on["batch_per_replica"]
    reloaded = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert reloaded.count_params() > 0 and reloaded.dtype_policy.name == "float32"


@pytest.mark.slow  # a second training run under another policy
def test_mixed_precision_trains_through_the_loss_scaling_optimizer():
    """float16 compute, float32 weights, the loss scaled and unscaled: on CPU here, GPUs in use."""
    output = run_python(
        """
        import json, keras, numpy as np
        import common
        from common.scale import distribute
        from common.models.training import fit_distributed

        mirrored = distribute.setup("mirrored", cpu_devices=2)
        keras.mixed_precision.set_global_policy("mixed_float16")  # what setup does on a GPU
        inputs = np.random.default_rng(0).normal(size=(96, 10, 1)).astype("float32")
        data = (inputs[:64], inputs[:64].sum(axis=1)), (inputs[64:], inputs[64:].sum(axis=1))
        keras.utils.set_random_seed(1)
        with mirrored.scope():
            model = common.build_many_to_one((10, 1), 1, cell="gru", units=8)
            model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        history = fit_distributed(model, *data, strategy=mirrored.strategy, epochs=4,
                                  batch_size=32, patience=9).history
        print(json.dumps({
            "optimizer": type(model.optimizer).__name__,
            "weights": sorted({str(w.dtype) for w in model.trainable_weights}),
            "output": keras.backend.standardize_dtype(model(inputs[:2]).dtype),
            "loss": history["loss"],
        }))
        """
    )
    found = json.loads(output.strip().splitlines()[-1])
    assert found["optimizer"] == "LossScaleOptimizer"
    assert found["weights"] == ["float32"] and found["output"] == "float16"
    assert all(np.isfinite(found["loss"])) and found["loss"][-1] < found["loss"][0]


# ---------------------------------------------------------------- two worker processes


def start_cluster(tmp_path, app, *options, logs="logs"):
    command = [PYTHON, f"apps/{app}.py", "--quick", "--distribute", "multiworker", *options]
    here = os.getcwd()
    os.chdir(REPO)
    try:
        return distribute.start_local_cluster(command, 2, logs=tmp_path / logs)
    finally:
        os.chdir(here)


def wait_all(processes, timeout=240):
    return [process.wait(timeout=timeout) for process in processes]


@pytest.mark.slow  # processes of their own
@pytest.mark.parametrize("app", ["forecast", "textgen"])
def test_two_workers_train_and_the_chief_saves_one_model_that_reloads(app, tmp_path):
    out = tmp_path / "run"
    assert wait_all(start_cluster(tmp_path, app, "--out", out)) == [0, 0]
    chief, other = ((tmp_path / "logs" / f"worker-{i}.log").read_text() for i in (0, 1))
    assert "2 workers (this is worker 0" in chief and "global batch" in chief
    assert "Worker 1 of 2: training done; worker 0 saves the run" in other
    assert sorted(path.name for path in tmp_path.iterdir()) == ["logs", "run"]  # no backup left
    # Both workers reached the same model: the same validation figures in both logs.
    model_name = {"forecast": "model (median)", "textgen": "(best epoch"}[app]
    rows = [[line for line in log.splitlines() if model_name in line] for log in (chief, other)]
    assert rows[0] and rows[0] == rows[1]
    model = keras.models.load_model(out / "model.keras")
    shape = [2] + [size or 5 for size in model.inputs[0].shape[1:]]  # textgen reads any length
    inputs = np.ones(shape, model.inputs[0].dtype)
    again = keras.models.load_model(out / "model.keras")
    np.testing.assert_array_equal(
        model.predict(inputs, verbose=0), again.predict(inputs, verbose=0)
    )


@pytest.mark.slow  # processes of their own
def test_a_killed_worker_is_restarted_and_training_resumes_from_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    options = ("--out", out, "--epochs", "6", "--steps-per-epoch", "8", "--minutes", "5")
    processes = start_cluster(tmp_path, "textgen", *options, logs="first")
    chief_log = tmp_path / "first" / "worker-0.log"
    started = time.time()
    while "epoch   2" not in chief_log.read_text():  # epoch 1's checkpoint is written
        assert time.time() - started < 180 and processes[0].poll() is None, chief_log.read_text()
        time.sleep(0.2)
    processes[1].kill()
    processes[1].wait()
    assert processes[0].wait(timeout=120) == 75  # the chief notices, says so, and stops
    last_line = chief_log.read_text().strip().splitlines()[-1]
    assert last_line.startswith("textgen: error: lost contact with another worker")
    assert "start every worker again" in last_line and not out.exists()
    assert wait_all(start_cluster(tmp_path, "textgen", *options, logs="second")) == [0, 0]
    resumed = (tmp_path / "second" / "worker-0.log").read_text()
    epochs = [int(line.split()[1]) for line in resumed.splitlines() if line.startswith("epoch ")]
    assert "resuming" in resumed and epochs[0] >= 2  # not from the start
    assert epochs[-1] == 6
    rows = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5, 6]  # the earlier run's epochs too
    # The weights were restored: the first resumed epoch trains well below a fresh model's
    # first epoch (which starts near ln 72 = 4.3 nats/char).
    first = epochs[0] - 1
    assert rows[first]["train_loss_nats"] < rows[0]["train_loss_nats"] - 0.2, rows
    assert rows[0]["wall_seconds"] is None and "restarted" in rows[0]["wall_seconds_null_reason"]
    reloaded = keras.models.load_model(out / "model.keras")  # a whole character model: it runs
    assert reloaded.predict(np.full((1, 5), 2, "int32"), verbose=0).shape[:2] == (1, 5)
    assert not (tmp_path / "run.backup").exists()


@pytest.mark.slow  # processes of their own
def test_sigterm_stops_a_worker_cleanly_and_keeps_the_checkpoints(tmp_path):
    """A scheduler's SIGTERM: that worker says so (130), the other exits 75, nothing is saved."""
    out = tmp_path / "run"
    options = ("--out", out, "--epochs", "30", "--steps-per-epoch", "8", "--minutes", "5")
    processes = start_cluster(tmp_path, "textgen", *options)
    log = tmp_path / "logs" / "worker-1.log"
    started = time.time()
    while "epoch   2" not in log.read_text():
        assert time.time() - started < 180 and processes[1].poll() is None, log.read_text()
        time.sleep(0.2)
    processes[1].send_signal(signal.SIGTERM)
    assert processes[1].wait(timeout=60) == 130
    assert log.read_text().strip().splitlines()[-1] == "interrupted; nothing was saved"
    assert processes[0].wait(timeout=120) == 75
    assert not out.exists()
    assert sorted(path.name for path in (tmp_path / "run.backup").iterdir()) == [
        "worker-0",
        "worker-1",
    ]


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("app", ["forecast", "sentiment", "textgen", "anomaly"])
def test_multiworker_without_out_is_one_line(app, run_app):
    status, _, err = run_app(app, "--distribute", "multiworker")
    assert status == 2 and err.count("\n") == 1
    assert "--distribute multiworker: needs --out" in err


def test_a_bad_tf_config_is_one_line_before_any_work(run_app, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"index": 0}}')
    status, out, err = run_app("forecast", "--distribute", "multiworker", "--out", tmp_path / "r")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("forecast: error: --distribute multiworker: Expected TF_CONFIG")
    assert "Data:" not in out


def test_a_worker_that_never_comes_is_one_line_not_a_hang(run_app, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", distribute.local_tf_configs(2)[0])  # worker 1 never starts
    monkeypatch.setenv("RNN_WORKSHOP_WAIT_SECONDS", "1")
    started = time.monotonic()
    status, _, err = run_app("forecast", "--distribute", "multiworker", "--out", tmp_path / "r")
    assert status == 2 and err.count("\n") == 1 and time.monotonic() - started < 30
    assert "to start within 1 s. Received: no answer from 127.0.0.1:" in err


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "soon"])
def test_a_bad_waiting_time_is_one_line(seconds, run_app, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", distribute.local_tf_configs(2)[0])
    monkeypatch.setenv("RNN_WORKSHOP_WAIT_SECONDS", seconds)
    status, _, err = run_app("forecast", "--distribute", "multiworker", "--out", tmp_path / "r")
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("forecast: error: RNN_WORKSHOP_WAIT_SECONDS: expected a")


def test_an_unknown_host_is_one_line(run_app, tmp_path, monkeypatch):
    config = {
        "cluster": {"worker": ["127.0.0.1:1", "no-such-host.invalid:2"]},
        "task": {"type": "worker", "index": 0},
    }
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    status, _, err = run_app("textgen", "--distribute", "multiworker", "--out", tmp_path / "r")
    assert status == 2 and err.count("\n") == 1 and "no-such-host.invalid:2" in err


@pytest.mark.slow  # processes of their own
def test_workers_with_different_settings_all_stop_with_one_line(tmp_path):
    command = [PYTHON, "apps/forecast.py", "--quick", "--distribute", "multiworker"]
    configs = distribute.local_tf_configs(2)
    processes = [
        subprocess.Popen(
            command + ["--out", tmp_path / "run", "--units", units],
            cwd=REPO,
            text=True,
            env={**os.environ, "TF_CONFIG": config},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for config, units in zip(configs, ["8", "16"])
    ]
    for process in processes:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 2 and err.count("\n") == 1, err
        assert "same settings. Received: other settings on worker(s)" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # processes of their own
def test_the_launcher_refuses_a_bad_command_in_one_line():
    result = subprocess.run(
        [PYTHON, "-m", "common.cli.launch", "--workers", "2", "--", "/no/such/program"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "could not start '/no/such/program'" in result.stderr


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU")
def test_mixed_precision_without_a_gpu_is_one_line(run_app, tmp_path):
    status, _, err = run_app("textgen", "--quick", "--mixed-precision", "--out", tmp_path / "r")
    assert status == 2 and err.count("\n") == 1
    assert "--mixed-precision: needs a GPU" in err
    for app in ("forecast", "anomaly"):  # with --load it is refused without asking for a GPU
        status, _, err = run_app(app, "--mixed-precision", "--load", tmp_path)
        assert status == 2 and err.count("\n") == 1 and "--mixed-precision" in err, err
