"""Tests for the shared ``common`` package: builders, data helpers, metrics, CLI helpers."""

import dataclasses
import json
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

import common
from common import cli

import keras

CELLS = ["rnn", "gru", "lstm"]


# --- builders: output shapes for every topology and cell -------------------------------


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_many_to_one_shape(cell, bidirectional):
    model = common.build_many_to_one(
        (7, 3), output_units=2, cell=cell, units=(8,), bidirectional=bidirectional
    )
    assert model(np.zeros((4, 7, 3), "float32")).shape == (4, 2)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_many_to_many_shape(cell, bidirectional):
    model = common.build_many_to_many(
        (7, 3), output_units=5, cell=cell, units=8, bidirectional=bidirectional
    )
    assert model(np.zeros((4, 7, 3), "float32")).shape == (4, 7, 5)


@pytest.mark.parametrize("cell", CELLS)
def test_one_to_many_feeds_the_same_vector_at_every_step(cell):
    model = common.build_one_to_many(
        input_dim=3, timesteps=6, output_units=2, cell=cell, units=(8,)
    )
    assert model(np.zeros((4, 3), "float32")).shape == (4, 6, 2)
    assert model.get_layer("repeat").output.shape == (None, 6, 3)


def test_one_to_one_is_dense_only():
    model = common.build_one_to_one(input_dim=10, output_units=1, hidden_units=(16, 8))
    assert model(np.zeros((4, 10), "float32")).shape == (4, 1)
    assert not any(isinstance(layer, keras.layers.RNN) for layer in model.layers)
    # 10*16+16 + 16*8+8 + 8*1+1 parameters, counted by hand.
    assert model.count_params() == 176 + 136 + 9


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("attention", [None, "dot", "additive", "bahdanau"])
def test_encoder_decoder_shape(cell, attention):
    model = common.build_encoder_decoder(
        (9, 2), (4, 1), output_units=3, cell=cell, units=(8,), attention=attention
    )
    assert model([np.zeros((5, 9, 2), "float32"), np.zeros((5, 4, 1), "float32")]).shape == (
        5,
        4,
        3,
    )


def test_stacking_builds_one_recurrent_layer_per_entry_of_units():
    model = common.build_many_to_one((7, 1), output_units=1, cell="gru", units=(16, 8, 4))
    recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]
    assert [layer.units for layer in recurrent] == [16, 8, 4]
    # Every layer but the last hands a full sequence to the next one.
    assert [layer.return_sequences for layer in recurrent] == [True, True, False]


def test_bidirectional_doubles_the_width():
    model = common.build_many_to_many(
        (7, 1), output_units=1, cell="lstm", units=(6,), bidirectional=True
    )
    wrapper = next(layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional))
    assert wrapper.output.shape == (None, 7, 12)


def test_parameter_count_matches_the_lstm_formula():
    # LSTM: 4 gates, each with input weights, recurrent weights and a bias.
    features, units = 3, 5
    model = common.build_many_to_one((None, features), output_units=1, cell="lstm", units=units)
    lstm = next(layer for layer in model.layers if isinstance(layer, keras.layers.LSTM))
    assert lstm.count_params() == 4 * (features * units + units * units + units)


def test_embedding_input_masks_padding():
    model = common.build_many_to_one(
        (None,), output_units=1, vocab_size=20, embedding_dim=4, units=(8,)
    )
    tokens = np.array([[3, 5, 7, 0, 0], [3, 5, 7, 9, 0]])
    padded_more = np.array([[3, 5, 7, 0, 0, 0, 0, 0]])
    outputs = keras.ops.convert_to_numpy(model(tokens))
    # Padding (id 0) is skipped, so extra padding cannot change the result.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(padded_more)), outputs[:1], atol=1e-6
    )
    assert not np.allclose(outputs[0], outputs[1])


def test_defaults_keep_the_cudnn_kernel_eligible():
    model = common.build_many_to_one((7, 1), output_units=1, cell="lstm", units=(8, 8), dropout=0.2)
    for layer in model.layers:
        if isinstance(layer, keras.layers.LSTM):
            assert layer.cell.recurrent_dropout == 0
            assert layer.cell.activation is keras.activations.tanh
            assert layer.cell.recurrent_activation is keras.activations.sigmoid
            assert not layer.unroll


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cell": "lstn"}, 'Expected cell in {"rnn", "gru", "lstm"}. Received: cell="lstn"'),
        ({"units": (8, 0)}, "units"),
        ({"dropout": 1.5}, "dropout"),
        ({"units": ()}, "units"),
    ],
)
def test_builder_mistakes_raise_value_error(kwargs, message):
    with pytest.raises(
        ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")
    ):
        common.build_many_to_one((7, 1), output_units=1, **kwargs)


def test_unknown_attention_is_refused():
    with pytest.raises(ValueError, match="attention"):
        common.build_encoder_decoder((9, 1), (3, 1), 1, attention="cosine")


# --- save and reload: identical predictions, no custom objects --------------------------


def _round_trip(model, inputs, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    expected = keras.ops.convert_to_numpy(model(inputs))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded(inputs)), expected)
    return reloaded


def test_every_topology_reloads_to_identical_predictions(tmp_path):
    rng = np.random.default_rng(0)
    sequence = rng.normal(size=(3, 7, 2)).astype("float32")
    vector = rng.normal(size=(3, 4)).astype("float32")
    _round_trip(common.build_one_to_one(4, 2), vector, tmp_path)
    _round_trip(common.build_one_to_many(4, 5, 2, cell="gru"), vector, tmp_path)
    _round_trip(
        common.build_many_to_one((7, 2), 1, cell="rnn", units=(4, 4), bidirectional=True),
        sequence,
        tmp_path,
    )
    _round_trip(
        common.build_many_to_many((None,), 11, vocab_size=11, embedding_dim=3),
        np.array([[1, 2, 3, 0]]),
        tmp_path,
    )
    reloaded = _round_trip(
        common.build_encoder_decoder((7, 2), (3, 1), 1, attention="additive", bidirectional=True),
        [sequence, rng.normal(size=(3, 3, 1)).astype("float32")],
        tmp_path,
    )
    assert isinstance(reloaded.get_layer("attention"), keras.layers.AdditiveAttention)


def test_quantile_loss_reloads_with_a_compiled_model(tmp_path):
    model = common.build_many_to_one((5, 1), output_units=3, units=4)
    model.compile(optimizer="adam", loss=common.QuantileLoss((0.1, 0.5, 0.9)))
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded.loss, common.QuantileLoss)
    assert reloaded.loss.quantiles == (0.1, 0.5, 0.9)


# --- encoder-decoder helpers --------------------------------------------------------------


def test_teacher_forcing_shifts_targets_right():
    targets = np.array([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    decoder_inputs = common.teacher_forcing_inputs(targets, start_value=np.array([[0.5], [0.7]]))
    np.testing.assert_array_equal(decoder_inputs[:, :, 0], [[0.5, 1.0, 2.0], [0.7, 4.0, 5.0]])


def test_autoregressive_prediction_matches_feeding_outputs_back_by_hand():
    keras.utils.set_random_seed(1)
    model = common.build_encoder_decoder((6, 1), (3, 1), 1, cell="gru", units=(5,), attention="dot")
    encoder_inputs = np.random.default_rng(1).normal(size=(2, 6, 1)).astype("float32")
    predicted = common.predict_autoregressive(model, encoder_inputs, start_value=0.25)
    # By hand: step t reads the outputs of steps < t.
    decoder_inputs = np.zeros((2, 3, 1), "float32")
    decoder_inputs[:, 0] = 0.25
    for step in range(1, 3):
        outputs = keras.ops.convert_to_numpy(model([encoder_inputs, decoder_inputs]))
        decoder_inputs[:, step] = outputs[:, step - 1]
    outputs = keras.ops.convert_to_numpy(model([encoder_inputs, decoder_inputs]))
    np.testing.assert_allclose(predicted, outputs, rtol=1e-5, atol=1e-6)


def test_attention_scores_are_a_distribution_over_encoder_steps():
    model = common.build_encoder_decoder((6, 1), (3, 1), 1, units=(4,), attention="additive")
    scores = common.attention_scores(model, np.ones((2, 6, 1)), np.ones((2, 3, 1)))
    assert scores.shape == (2, 3, 6)
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="attention"):
        common.attention_scores(
            common.build_encoder_decoder((6, 1), (3, 1), 1, units=(4,)),
            np.ones((1, 6, 1)),
            np.ones((1, 3, 1)),
        )


# --- windowing and splits, against hand-worked examples ----------------------------------


def test_make_windows_by_hand():
    inputs, targets = common.make_windows(np.arange(10.0), window=3, horizon=2, stride=3)
    # Starts 0, 3 (a start at 6 would need steps 6..10, one past the end).
    np.testing.assert_array_equal(inputs[:, :, 0], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(targets[:, :, 0], [[3, 4], [6, 7]])


def test_make_windows_takes_targets_from_another_series():
    features = np.stack([np.arange(6.0), -np.arange(6.0)], axis=1)
    inputs, targets = common.make_windows(
        features, window=2, horizon=1, targets=np.arange(6.0) * 10
    )
    assert inputs.shape == (4, 2, 2) and targets.shape == (4, 1, 1)
    np.testing.assert_array_equal(targets[:, 0, 0], [20, 30, 40, 50])


def test_windows_dataset_matches_make_windows():
    series = np.arange(40.0).reshape(20, 2)
    expected_inputs, expected_targets = common.make_windows(series, window=4, horizon=3, stride=2)
    batches = list(common.windows_dataset(series, window=4, horizon=3, stride=2, batch_size=3))
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), expected_inputs)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), expected_targets)


def test_too_short_series_is_refused_with_the_numbers():
    with pytest.raises(
        ValueError, match="at least window \\+ horizon = 5 steps. Received: 4 steps"
    ):
        common.make_windows(np.arange(4.0), window=3, horizon=2)


def test_chronological_split_by_hand():
    train, validation, test = common.chronological_split(
        20, validation_fraction=0.25, test_fraction=0.25
    )
    assert (train, validation, test) == (slice(0, 10), slice(10, 15), slice(15, 20))
    with pytest.raises(ValueError):
        common.chronological_split(20, validation_fraction=0.5, test_fraction=0.5)


def test_no_training_target_lies_in_validation_or_test():
    length, window, horizon = 50, 5, 3
    split = common.chronological_split(length, 0.2, 0.2)  # train 0..29, val 30..39, test 40..49
    starts = common.window_starts(length, window, horizon)
    train, validation, test = common.assign_windows(starts, window, horizon, split)
    last_train_target = (starts[train] + window + horizon - 1).max()
    assert last_train_target == 29
    assert (starts[validation] + window).min() == 30 and (
        starts[validation] + window + horizon - 1
    ).max() == 39
    assert (starts[test] + window).min() == 40
    # Windows whose targets straddle a boundary belong to no part.
    assert not np.any(train & validation) and not np.any(validation & test)
    assert (train | validation | test).sum() == len(starts) - 2 * (horizon - 1)


def test_scaler_learns_from_training_data_only():
    series = np.concatenate([np.full(80, 1.0), np.full(20, 100.0)])  # a jump in the test part
    train, _, test = common.chronological_split(len(series), 0.0 + 1e-9, 0.2)
    scaler = common.StandardScaler().fit(series[train])
    assert scaler.mean.tolist() == [1.0]  # the 100s never reach the statistics
    assert scaler.scale.tolist() == [1.0]  # a constant feature is left unscaled, not divided by 0
    np.testing.assert_allclose(scaler.transform(series[test][:, None]), 99.0)


def test_scaler_by_hand_and_round_trips(tmp_path):
    values = np.array([[1.0, 10.0], [3.0, 30.0]])
    scaler = common.StandardScaler().fit(values)
    np.testing.assert_allclose(scaler.transform(values), [[-1, -1], [1, 1]])
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(values)), values)
    scaler.save(tmp_path / "scaler.json")
    reloaded = common.StandardScaler.load(tmp_path / "scaler.json")
    np.testing.assert_array_equal(reloaded.transform(values), scaler.transform(values))
    with pytest.raises(ValueError, match="fitted"):
        common.StandardScaler().transform(values)


# --- metrics, against hand computations ---------------------------------------------------


def test_point_metrics_by_hand():
    actual, predicted = np.array([10.0, 20.0, 40.0]), np.array([12.0, 18.0, 44.0])
    assert common.mae(actual, predicted) == pytest.approx((2 + 2 + 4) / 3)
    assert common.rmse(actual, predicted) == pytest.approx(math.sqrt((4 + 4 + 16) / 3))
    assert common.mape(actual, predicted) == pytest.approx(100 * (0.2 + 0.1 + 0.1) / 3)
    assert math.isnan(common.mape([0.0, 1.0], [1.0, 1.0]))
    # Training naive MAE: |2-1| + |4-2| = 1.5 on average.
    assert common.mase(actual, predicted, training_series=[1.0, 2.0, 4.0]) == pytest.approx(
        (8 / 3) / 1.5
    )


def test_directional_accuracy_by_hand():
    assert common.directional_accuracy([1, -1, 2, -3], [1, 1, 1, -1]) == pytest.approx(0.75)
    assert common.directional_accuracy([1, 0, -1], [1, 5, 1]) == pytest.approx(
        0.5
    )  # a flat day is left out
    assert math.isnan(
        common.directional_accuracy([1, -1], [0, 0])
    )  # persistence calls no direction


def test_pinball_loss_and_coverage_by_hand():
    # q = 0.9: under-predicting by 2 costs 0.9 * 2; over-predicting by 1 costs 0.1 * 1.
    assert common.pinball_loss([5.0, 5.0], [3.0, 6.0], 0.9) == pytest.approx((1.8 + 0.1) / 2)
    assert common.coverage([1, 2, 3, 4], lower=[0, 2.5, 2, 5], upper=[2, 3, 3, 6]) == pytest.approx(
        0.5
    )


def test_quantile_loss_matches_the_numpy_pinball_loss():
    y_true = np.array([[1.0], [4.0], [-2.0]], "float32")
    y_pred = np.array([[0.0, 1.0, 2.0], [3.0, 3.5, 5.0], [-1.0, 0.0, 1.0]], "float32")
    quantiles = (0.1, 0.5, 0.9)
    expected = np.mean(
        [common.pinball_loss(y_true[:, 0], y_pred[:, i], q) for i, q in enumerate(quantiles)]
    )
    loss = common.QuantileLoss(quantiles)(y_true, y_pred)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_format_table_aligns_columns_and_marks_missing_values():
    text = common.format_table(
        {"model": {"MAE": 1.25, "MAPE": math.nan}, "persistence": {"MAE": 12345.678}}
    )
    lines = text.splitlines()
    assert lines[0] == "|             | MAE      | MAPE |"
    assert lines[2] == "| model       | 1.25     | n/a  |"
    assert lines[3] == "| persistence | 12,345.7 | n/a  |"
    assert len({len(line) for line in lines}) == 1


# --- training helpers ----------------------------------------------------------------------


def test_fit_restores_the_best_weights():
    common.set_seed(0)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(64, 4)).astype("float32")
    targets = inputs @ np.array([[1.0], [-2.0], [0.5], [0.0]], "float32")
    model = common.build_one_to_one(4, 1, hidden_units=())
    # A learning rate this large makes validation loss bounce, so the last epoch is not the best.
    model.compile(optimizer=keras.optimizers.SGD(0.9), loss="mse")
    history = common.fit(
        model, (inputs, targets), (inputs[:16], targets[:16]), epochs=8, patience=3, batch_size=16
    )
    best = min(history.history["val_loss"])
    assert model.evaluate(inputs[:16], targets[:16], verbose=0) == pytest.approx(best, rel=1e-4)


def test_set_seed_makes_weights_repeatable():
    common.set_seed(7)
    first = common.build_many_to_one((5, 1), 1, units=4).get_weights()
    common.set_seed(7)
    second = common.build_many_to_one((5, 1), 1, units=4).get_weights()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_time_budget_stops_training():
    model = common.build_one_to_one(4, 1)
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(
        np.zeros((64, 4)),
        np.zeros((64, 1)),
        epochs=50,
        batch_size=8,
        verbose=0,
        callbacks=[common.TimeBudget(0.0)],
    )
    assert len(history.history["loss"]) == 1


# --- command-line helpers ---------------------------------------------------------------------


def test_cosine_decay_in_time_follows_the_clock(monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    clock = [100.0]
    monkeypatch.setattr("common.models.training.time.perf_counter", lambda: clock[0])
    schedule = common.CosineDecayInTime(60.0, 0.01, final_fraction=0.1)
    schedule.set_model(model)
    schedule.on_train_begin()
    rates = []
    for seconds in (0, 30, 60, 90):  # start, half-way, the end, past the end
        clock[0] = 100.0 + seconds
        schedule.on_train_batch_begin(0)
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    # 0.01 * (0.1 + 0.9 * (1 + cos(pi * t / 60)) / 2), by hand
    assert rates == pytest.approx([0.01, 0.0055, 0.001, 0.001], rel=1e-6)
    with pytest.raises(ValueError, match="Expected seconds > 0"):
        common.CosineDecayInTime(0, 0.01)


def test_report_user_errors_prints_one_line_and_returns_2(capsys):
    @cli.report_user_errors
    def main(argv=None):
        raise cli.UserError("no such column 'Close'")

    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("error: no such column 'Close'") and err.count("\n") == 1


@dataclass(frozen=True)
class DemoConfig(cli.RunOptions):
    APP = "demo"
    GROUPS = {"model": "model"}

    epochs: int = cli.option(5, quick=2)  # a shared option with this app's default
    batch_size: int = 8
    units: tuple = cli.option((32,), "units per layer", type=cli.positive_int, quick=(4,))
    cell: str = cli.option("gru", "recurrent cell", choices=["gru", "lstm"])
    rate: float = cli.option(0.0, "a rate of 10% or less", type=float)


def test_options_come_from_the_config_fields_with_their_defaults():
    parser = DemoConfig.parser("Demo.\n\nexamples\n\nmore")
    config = DemoConfig.from_args(parser.parse_args([]))
    assert config == dataclasses.replace(DemoConfig(), progress=config.progress)
    args = parser.parse_args(["--quick", "--seed", "3", "--units", "8", "16"])
    config = DemoConfig.from_args(args)
    assert (config.epochs, config.batch_size, config.seed, config.quick) == (5, 8, 3, True)
    assert config.units == (8, 16) and config.out is None
    help_text = parser.format_help()
    for shown in ["units per layer (default: 32)", "(default: gru)", "10% or less (default: 0.0)"]:
        assert shown in " ".join(help_text.split()), shown
    assert help_text.index("model:") < help_text.index("training and output:")
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "0"])


def test_quick_shrinks_only_what_was_not_typed(capsys):
    assert DemoConfig.quick_values() == {"epochs": 2, "units": (4,)}
    args = DemoConfig.parser("Demo.\n\nx\n\ny").parse_args(["--quick", "--units", "9"])
    cli.shrink_for_quick(args, ["--quick", "--units", "9"], **DemoConfig.quick_values())
    assert DemoConfig.from_args(args).epochs == 2 and DemoConfig.from_args(args).units == (9,)
    assert capsys.readouterr().out == "--quick: epochs 2\n"


def test_load_model_from_dir_reports_missing_and_damaged_models(tmp_path):
    with pytest.raises(cli.UserError, match="no such folder"):
        cli.load_model_from_dir(tmp_path / "nowhere")
    with pytest.raises(cli.UserError, match="no model.keras"):
        cli.load_model_from_dir(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"not a zip file")
    with pytest.raises(cli.UserError, match="damaged"):
        cli.load_model_from_dir(tmp_path)


def test_save_model_atomically_keeps_the_old_model_when_saving_fails(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"the user's previous model")

    class Broken:
        def save(self, filename):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cli.save_model_atomically(Broken(), path)
    assert path.read_bytes() == b"the user's previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary left behind


def test_options_a_load_run_does_not_use_are_refused_in_one_line(capsys):
    parser = DemoConfig.parser("Demo.\n\nx\n\ny")
    cli.refuse_unused_with_load(parser, ["--load", "R", "--seed", "3"], used={"seed"})
    for argv, named in [
        (["--load", "R", "--cell", "lstm"], "--cell"),
        (["--units=8", "--load", "R", "--epochs", "3"], "--units, --epochs"),  # --help order
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.refuse_unused_with_load(parser, argv, used={"seed"})
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1
        assert err.startswith(f"demo: error: {named}: not used with --load"), err


def test_the_parser_takes_description_and_examples_from_the_docstring():
    doc = "Do one thing well.\n\n    python apps/demo.py --quick\n\nWhy: because.\n\nMore detail."
    parser = DemoConfig.parser(doc)
    assert parser.prog == "demo.py" and parser.description == "Do one thing well."
    assert parser.epilog == "Why: because.\n\nMore detail."
    assert parser.parse_args([]).epochs == 5 and parser.parse_args([]).batch_size == 8


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--seed", "-1"], "expected a seed from 0 to 4294967295, got -1"),
        (["--seed", str(2**32)], "expected a seed from 0 to 4294967295"),
        (["--seed", "x"], "expected an integer seed, got 'x'"),
        (["--epochs", "0"], "expected an integer from 1 to 1,000,000, got 0"),
        (["--batch-size", "1.5"], "expected a positive integer, got '1.5'"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_a_bad_option_is_one_line_pointing_to_help(argv, expected, capsys):
    parser = DemoConfig.parser("Demo.\n\nexamples\n\nmore")
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert (
        err.startswith("demo: error:") and expected in err and err.rstrip().endswith("(see --help)")
    )


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "0", "-1", "1e400", "abc"])
def test_positive_float_refuses_what_is_not_a_finite_positive_number(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        cli.positive_float(text)
    assert cli.positive_float("2e-3") == 0.002


def test_run_folder_is_written_whole_or_not_at_all(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(RuntimeError, match="midway"):
        with cli.run_folder(target) as folder:
            (folder / "model.keras").write_text("half")
            raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []  # no run, no debris
    with cli.run_folder(target) as folder:
        (folder / "config.json").write_text('{"app": "demo"}')
    assert sorted(p.name for p in target.iterdir()) == [".rnn-workshop-run", "config.json"]
    with pytest.raises(ValueError, match="holds files"):
        cli.check_out_folder(target)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while replacing: the earlier run stays
        with cli.run_folder(target, overwrite=True) as folder:
            (folder / "config.json").write_text("new")
            raise KeyboardInterrupt
    assert (target / "config.json").read_text() == '{"app": "demo"}'
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    with cli.run_folder(target, overwrite=True) as folder:
        (folder / "config.json").write_text("new")
    assert (target / "config.json").read_text() == "new" and [
        p.name for p in tmp_path.iterdir()
    ] == ["run"]


def test_out_refuses_links_and_overwrites_only_runs(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="not a symbolic link"):
        cli.check_out_folder(tmp_path / "dangling")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "prices.csv").write_text("the user's own data")
    with pytest.raises(ValueError, match="Expected a run saved by these apps to replace"):
        cli.check_out_folder(mine, overwrite=True)
    # A config.json of the user's own, even one naming an app, does not make a folder a run.
    for text in ['{"app": {"name": "shop"}}', '{"app": "my-dashboard"}', '{"app": "forecast"}']:
        (mine / "config.json").write_text(text)
        with pytest.raises(ValueError, match="Expected a run saved by these apps to replace"):
            cli.check_out_folder(mine, overwrite=True)
    with cli.run_folder(tmp_path / "run") as folder:
        (folder / "config.json").write_text('{"app": "forecast"}')
    cli.check_out_folder(tmp_path / "run", overwrite=True)  # a run: replacing it is what it is for


def test_overwrite_keeps_a_saved_run_that_holds_the_users_own_files(tmp_path):
    target = tmp_path / "run"
    with cli.run_folder(target) as folder:
        (folder / "config.json").write_text('{"app": "demo"}')
        (folder / "series").mkdir()
        (folder / "series" / "a.csv").write_text("1,2")
    cli.check_out_folder(target, overwrite=True)  # as the app wrote it: replaceable
    (target / ".DS_Store").write_text("a file browser's")  # litter does not count
    cli.check_out_folder(target, overwrite=True)
    for added, text in [("notes.md", "my notes"), ("series/a.csv", "1,2,3 (edited)")]:
        saved = (target / added).read_text() if (target / added).exists() else None

        def restore():
            (target / added).unlink() if saved is None else (target / added).write_text(saved)

        (target / added).write_text(text)
        with pytest.raises(ValueError, match=f"added or changed since it was saved .{added}."):
            cli.check_out_folder(target, overwrite=True)
        restore()
        with pytest.raises(cli.UserError, match="left as it is"):  # and at the swap
            with cli.run_folder(target, overwrite=True) as folder:
                (folder / "config.json").write_text('{"app": "demo"}')
                (target / added).write_text(text)  # while the new run was being saved
        assert (target / added).read_text() == text  # kept, with the run around it
        restore()
    os.mkfifo(target / "pipe")  # not a file the app wrote either, though it has no size
    with pytest.raises(ValueError, match=r"\(pipe\)"):
        cli.check_out_folder(target, overwrite=True)
    (target / "pipe").unlink()
    with cli.run_folder(target, overwrite=True) as folder:  # as saved again: replaced
        (folder / "config.json").write_text('{"app": "demo"}')
    assert sorted(path.name for path in target.iterdir()) == [".rnn-workshop-run", "config.json"]
    (target / cli.runs.RUN_MARKER).write_text("demo\n")  # a run marked before files were listed
    cli.check_out_folder(target, overwrite=True)
    mine = tmp_path / "mine"  # a folder of the user's, with a link to a run's marker
    mine.mkdir()
    (mine / "config.json").write_text('{"app": "demo"}')
    (mine / cli.runs.RUN_MARKER).symlink_to(target / cli.runs.RUN_MARKER)
    assert cli.saved_by(mine) is None


def test_out_folder_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="an existing file"):
        cli.check_out_folder(tmp_path / "file")
    with pytest.raises(ValueError, match="cannot be written"):
        cli.check_out_folder(tmp_path / "file" / "run")  # under a file
    with pytest.raises(ValueError, match="apart from the loaded run"):
        cli.check_out_folder(tmp_path / "saved", load=tmp_path / "saved")
    assert cli.default_run_path("demo") != cli.default_run_path("demo")  # never the same twice


def test_write_json_is_strict_and_says_why_a_figure_is_null(tmp_path):
    path = tmp_path / "metrics.json"
    cli.write_json(
        path,
        {
            "f1": float("nan"),
            "auc": np.float32(0.5),
            "n": np.int64(3),
            "rows": [{"big": float("inf"), "recall": np.float64("nan")}],
        },
        reasons={"recall": "no labelled anomalies"},
    )

    def refuse(constant):
        raise ValueError(constant)

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "f1": None,
        "f1_null_reason": "undefined for this data (a division of zero by zero)",
        "auc": 0.5,
        "n": 3,
        "rows": [
            {
                "big": None,
                "big_null_reason": "infinite for this data (a division by zero)",
                "recall": None,
                "recall_null_reason": "no labelled anomalies",
            }
        ],
    }


def test_load_model_from_dir_names_the_app_that_made_the_run(tmp_path):
    (tmp_path / "config.json").write_text('{"app": "textgen"}')
    with pytest.raises(cli.UserError, match="a run of textgen.py, not of forecast.py"):
        cli.load_model_from_dir(tmp_path, app="forecast")
    assert cli.saved_by(tmp_path) is None  # named, but not marked as a run: never replaced
    (tmp_path / "config.json").write_text("[" * 100_000)  # hostile: nested too deep to parse
    with pytest.raises(cli.UserError, match="no model.keras"):
        cli.load_model_from_dir(tmp_path, app="forecast")


def test_a_model_holding_python_code_is_refused_and_said_so(tmp_path):
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(tmp_path / "model.keras")
    with pytest.raises(
        cli.UserError, match="holds Python code .a Lambda layer.; it was not loaded"
    ):
        cli.load_model_from_dir(tmp_path)


# The shared run-folder code alone, in a process of its own: common.cli.runs without the
# package's __init__, so no TensorFlow to load (50 ms instead of seconds).
RUNS_ALONE = """
import sys, time, types
from pathlib import Path
common = types.ModuleType("common")
common.__path__ = [sys.argv[1]]
sys.modules["common"] = common
from common.cli import runs
"""

SAVE_SLOWLY = (
    RUNS_ALONE
    + """
try:
    with runs.run_folder(sys.argv[2]) as folder:
        (folder / "config.json").write_text('{"app": "demo"}')
        (folder / "who").write_text(sys.argv[3])
        time.sleep(1.5)  # both runs are inside their run_folder at once
except runs.UserError as error:
    print(error)
    sys.exit(2)
"""
)


def start_alone(script, *args):
    """Run ``script`` (after ``RUNS_ALONE``) with ``args`` in a Python process of its own."""
    import subprocess
    import sys
    from pathlib import Path

    package = str(Path(common.__file__).parent)
    command = [sys.executable, "-c", script, package, *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_runs_saving_to_one_folder_at_once_keep_one_whole_run(tmp_path):
    target = tmp_path / "R"
    runs = [start_alone(SAVE_SLOWLY, target, name) for name in ("first", "second")]
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert sorted(run.returncode for run in runs) == [0, 2], outputs
    loser = outputs[[run.returncode for run in runs].index(2)]
    assert "something was saved there while this run was working" in loser
    assert (target / "who").read_text() in ("first", "second")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["R"]  # no debris


# A run replacing R (--overwrite) that dawdles between setting the old run aside and putting
# its own in place, while a second run saves to R without --overwrite.
REPLACE_SLOWLY = (
    RUNS_ALONE
    + """
target, who, flags = Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])


def wait_for(flag, seconds):
    for _ in range(int(seconds * 100)):
        if (flags / flag).exists():
            break
        time.sleep(0.01)


if who == "replacing":
    claim = runs._claim

    def slow_claim(target, temporary):
        (flags / "set-aside").touch()
        wait_for("other-saving", 30)  # the other run is past its checks, saving
        wait_for("other-done", 0.5)  # and, were nothing to stop it, has saved
        claim(target, temporary)

    runs._claim = slow_claim
else:
    wait_for("set-aside", 30)  # starts while the replacing run has R set aside
try:
    with runs.run_folder(target, overwrite=who == "replacing") as folder:
        (folder / "config.json").write_text('{"app": "demo"}')
        (folder / "who").write_text(who)
        if who == "other":
            (flags / "other-saving").touch()
except runs.UserError as error:
    print(error)
    sys.exit(2)
finally:
    if who == "other":
        (flags / "other-done").touch()
"""
)


def test_a_run_saving_while_another_replaces_the_folder_waits_its_turn(tmp_path):
    target, flags = tmp_path / "runs" / "R", tmp_path / "flags"
    flags.mkdir()
    with cli.run_folder(target) as folder:  # the saved run that --overwrite replaces
        (folder / "config.json").write_text('{"app": "demo"}')
        (folder / "who").write_text("earlier")
    replacing = start_alone(REPLACE_SLOWLY, target, "replacing", flags)
    other = start_alone(REPLACE_SLOWLY, target, "other", flags)
    outputs = [run.communicate(timeout=60)[0] for run in (replacing, other)]
    assert [replacing.returncode, other.returncode] == [0, 2], outputs
    assert "left as it is" in outputs[1] and len(outputs[1].splitlines()) == 1
    assert (target / "who").read_text() == "replacing"
    assert [path.name for path in target.parent.iterdir()] == ["R"]  # no run set aside, lost


def test_out_created_while_the_run_works_is_one_line_and_kept(tmp_path):
    target = tmp_path / "R"
    with pytest.raises(cli.UserError, match="^--out .*R: something was saved there"):
        with cli.run_folder(target) as folder:
            (folder / "config.json").write_text('{"app": "demo"}')
            target.mkdir()
            (target / "mine.txt").write_text("the user's")
    assert [path.name for path in target.iterdir()] == ["mine.txt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["R"]
    # Earlier, while the run trained: refused as the run starts saving, saying what was lost.
    with pytest.raises(cli.UserError, match="holds files; this run was not saved .choose another"):
        with cli.run_folder(target) as folder:
            pytest.fail("the run was saved over a folder that appeared while it trained")
    assert [path.name for path in target.iterdir()] == ["mine.txt"]


def test_out_names_too_long_and_loaded_runs_reached_by_another_path_are_refused(tmp_path):
    import subprocess

    with pytest.raises(ValueError, match="Expected a folder name of at most 255 bytes"):
        cli.check_out_folder(tmp_path / ("r" * 256))
    cli.check_out_folder(tmp_path / ("r" * 255))  # the longest name the disk takes is fine
    saved, alias = tmp_path / "saved", tmp_path / "alias"
    saved.mkdir()
    alias.mkdir()
    (alias / ".keep").write_text("")
    if subprocess.run(["mount", "--bind", str(saved), str(alias)], capture_output=True).returncode:
        pytest.skip("bind mounts need root")
    try:
        for out in (alias, alias / "inside"):
            with pytest.raises(ValueError, match="apart from the loaded run"):
                cli.check_out_folder(out, overwrite=True, load=saved)
    finally:
        subprocess.run(["umount", str(alias)], check=True)


def token_encoder_decoder(seed=0):
    """An untrained token-to-token encoder-decoder: random, so decoding choices are not trivial."""
    common.set_seed(seed)
    return common.build_encoder_decoder(
        (12,),
        (6,),
        9,
        cell="gru",
        units=(16,),
        vocab_size=20,
        target_vocab_size=9,
        embedding_dim=8,
        attention="dot",
        output_activation="softmax",
    )


def test_beam_search_of_width_one_is_greedy_decoding():
    model = token_encoder_decoder()
    encoder_inputs = np.random.default_rng(0).integers(1, 20, size=(16, 12))
    greedy = common.predict_autoregressive(
        model, encoder_inputs, 1, feedback=lambda step: step.argmax(-1)
    ).argmax(-1)
    tokens, _ = common.beam_search(model, encoder_inputs, 1, beam_width=1)
    np.testing.assert_array_equal(tokens, greedy)


def test_beam_search_scores_its_sequence_as_the_model_does():
    model = token_encoder_decoder(seed=1)
    encoder_inputs = np.random.default_rng(1).integers(1, 20, size=(16, 12))
    tokens, log_probability = common.beam_search(model, encoder_inputs, 1, beam_width=4)
    greedy, greedy_log_probability = common.beam_search(model, encoder_inputs, 1, beam_width=1)
    # Teacher forcing on the returned tokens gives each step's probability in one call.
    probabilities = keras.ops.convert_to_numpy(
        model([encoder_inputs, common.teacher_forcing_inputs(tokens, 1)])
    )
    chosen = np.take_along_axis(probabilities, tokens[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(np.log(chosen).sum(axis=1), log_probability, rtol=1e-4)
    # On these examples a wider beam never ends below greedy (not a theorem, but typical).
    assert (log_probability >= greedy_log_probability - 1e-6).all()
    assert (log_probability > greedy_log_probability + 1e-6).any()  # and sometimes above
    with pytest.raises(ValueError, match="beam_width"):
        common.beam_search(model, encoder_inputs, 1, beam_width=0)


def numpy_softmax(scores):
    exponentials = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def test_bahdanau_attention_equals_the_formula_by_hand():
    from common.models.seq2seq import BahdanauAttention

    generator = np.random.default_rng(0)
    query = generator.normal(size=(3, 5)).astype("float32")  # the decoder's previous state
    values = generator.normal(size=(3, 7, 4)).astype("float32")  # the encoder outputs
    mask = np.ones((3, 7), dtype=bool)
    mask[2, 4:] = False  # the third sequence has 4 real steps
    attention = BahdanauAttention(6)
    context, weights = (keras.ops.convert_to_numpy(t) for t in attention(query, values, mask))
    w_query = keras.ops.convert_to_numpy(attention.query_projection.kernel)
    w_key = keras.ops.convert_to_numpy(attention.key_projection.kernel)
    b_key = keras.ops.convert_to_numpy(attention.key_projection.bias)
    v = keras.ops.convert_to_numpy(attention.score.kernel)[:, 0]
    # score(s, h_j) = v . tanh(s W_q + h_j W_k + b), a softmax over j, then sum_j a_j h_j.
    scores = np.tanh((query @ w_query)[:, None, :] + values @ w_key + b_key) @ v
    expected = numpy_softmax(np.where(mask, scores, -np.inf))
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    np.testing.assert_allclose(context, (expected[..., None] * values).sum(axis=1), atol=1e-5)
    assert np.all(weights[2, 4:] == 0)


def bahdanau_model(cell="gru", **dropout):
    common.set_seed(0)
    return common.build_encoder_decoder(
        (12,),
        (6,),
        9,
        cell=cell,
        units=(16,),
        vocab_size=20,
        target_vocab_size=9,
        embedding_dim=8,
        attention="bahdanau",
        output_activation="softmax",
        **dropout,
    )


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_bahdanau_decoder_is_causal_ignores_padding_and_reloads(cell, tmp_path):
    model = bahdanau_model(cell)
    generator = np.random.default_rng(1)
    encoder_inputs = generator.integers(1, 20, size=(4, 12))
    encoder_inputs[:, 8:] = 0  # padding
    decoder_inputs = generator.integers(1, 9, size=(4, 6))
    outputs = keras.ops.convert_to_numpy(model([encoder_inputs, decoder_inputs]))
    # Step t reads decoder inputs 0..t only, so autoregressive decoding is exact.
    changed = decoder_inputs.copy()
    changed[:, 3:] = 1
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model([encoder_inputs, changed]))[:, :3],
        outputs[:, :3],
        atol=1e-6,
    )
    weights = common.attention_scores(model, encoder_inputs, decoder_inputs)
    assert weights.shape == (4, 6, 12) and np.all(weights[..., 8:] == 0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    model.save(tmp_path / "bahdanau.keras")
    reloaded = keras.models.load_model(tmp_path / "bahdanau.keras")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded([encoder_inputs, decoder_inputs])), outputs
    )
    with pytest.raises(ValueError, match="one recurrent layer"):
        common.build_encoder_decoder((12, 1), (6, 1), 1, units=(8, 8), attention="bahdanau")


def test_draw_recurrence_draws_one_cell_rolled_and_one_per_step_unrolled(tmp_path):
    from matplotlib.patches import FancyBboxPatch

    figure = common.draw_recurrence(steps=5)
    rolled, unrolled = figure.axes
    boxes = [sum(isinstance(p, FancyBboxPatch) for p in axis.patches) for axis in figure.axes]
    assert boxes == [1, 5]  # one cell with its loop; five copies in time
    texts = {text.get_text() for text in unrolled.texts}
    assert {"x(1)", "h(T)", "cell T"} <= texts and "h(t-1)" in {t.get_text() for t in rolled.texts}
    path = common.draw_recurrence(steps=3, path=tmp_path / "rnn.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="at least 2"):
        common.draw_recurrence(steps=1)


@pytest.mark.parametrize("cell", ["gru", pytest.param("lstm", marks=pytest.mark.slow)])
def test_bahdanau_decoder_trains_with_dropout_on_batches_of_any_size(cell):
    model = bahdanau_model(cell, dropout=0.2, recurrent_dropout=0.2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    generator = np.random.default_rng(2)
    encoder_inputs = generator.integers(1, 20, size=(50, 12))  # 50 = batches of 16, 16, 16, 2
    decoder_inputs = generator.integers(1, 9, size=(50, 6))
    history = model.fit(
        [encoder_inputs, decoder_inputs], decoder_inputs, batch_size=16, epochs=2, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][1] < history.history["loss"][0]


def test_out_around_a_loaded_run_reached_through_a_link_is_refused_and_beside_it_is_not(tmp_path):
    runs = tmp_path / "runs"
    (runs / "a" / "sub").mkdir(parents=True)
    (tmp_path / "latest").symlink_to(runs / "a" / "sub")  # the loaded run, by a link
    cases = [  # (--out, --load): one inside or around the other, once the links are followed
        (runs / "a", tmp_path / "latest"),
        (runs / "a" / "sub" / "y", tmp_path / "latest"),
        (tmp_path / "latest" / ".." / "x", runs / "a"),  # reads as tmp/x, lands in runs/a/x
    ]
    for out, load in cases:
        with pytest.raises(ValueError, match="apart from the loaded run"):
            cli.check_out_folder(out, overwrite=True, load=load)
    cli.check_out_folder(runs / "b", load=tmp_path / "latest")  # beside it: fine
    cli.check_out_folder(tmp_path / "latest" / ".." / "x", load=tmp_path / "latest")  # runs/a/x


def test_out_under_a_link_to_nothing_or_a_loop_of_links_is_refused_before_work(tmp_path):
    (tmp_path / "runs").symlink_to(tmp_path / "unmounted" / "runs")
    with pytest.raises(ValueError, match="a symbolic link to nothing"):
        cli.check_out_folder(tmp_path / "runs" / "forecast" / "r1")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(ValueError, match="not a symbolic link|loop of links"):
        cli.check_out_folder(tmp_path / "loop")
    with pytest.raises(ValueError, match="loop of links|link to nothing|cannot be written"):
        cli.check_out_folder(tmp_path / "loop" / "run")


def test_exact_float32_turns_tensor_float_32_off_and_says_whether_it_was_on():
    import tensorflow as tf

    from common.models.lessons import exact_float32

    before = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        tf.config.experimental.enable_tensor_float_32_execution(True)
        assert exact_float32() is True
        assert tf.config.experimental.tensor_float_32_execution_enabled() is False
        assert exact_float32() is False  # already off
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(before)


# --- settings exported in the shell for other work --------------------------------------


def test_a_keras_backend_exported_for_other_work_is_overridden_and_said():
    from common.quiet import use_tensorflow_backend

    for chosen in ("jax", "torch", "numpy", "openvino", "nonsense\nsecond line"):
        environ = {"KERAS_BACKEND": chosen}
        note = use_tensorflow_backend(environ)
        assert environ == {"KERAS_BACKEND": "tensorflow"}
        assert note.startswith(f"note: KERAS_BACKEND={chosen!r} ignored") and "\n" not in note
    for chosen in ({}, {"KERAS_BACKEND": "tensorflow"}, {"KERAS_BACKEND": ""}):
        assert use_tensorflow_backend(dict(chosen)) is None  # nothing to say
    assert keras.backend.backend() == "tensorflow"


PLOT_ONE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("plots", sys.argv[1])
plots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plots)
figure = plots.plt.figure()
figure.add_subplot().plot([1, 2, 3])
plots.save_figure(figure, sys.argv[2])
"""


@pytest.mark.parametrize("backend", ["module://no_such_package.backend", "TkAgg", "QtAgg"])
def test_plots_are_saved_whatever_matplotlib_backend_the_shell_exports(tmp_path, backend):
    import os
    import subprocess
    import sys
    from pathlib import Path

    plots = Path(common.__file__).parent / "report" / "plots.py"  # alone: no TensorFlow to load
    result = subprocess.run(
        [sys.executable, "-c", PLOT_ONE, str(plots), str(tmp_path / "plot.png")],
        capture_output=True,
        text=True,
        env=os.environ | {"MPLBACKEND": backend},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-300:]
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")
