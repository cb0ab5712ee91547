import keras
import numpy as np
import pytest

from lstmkit.callbacks import WeightAveraging
from lstmkit.config import TrainingConfig
from lstmkit.optimization import learning_rate


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


class RecordRaw(keras.callbacks.Callback):
    """Weights right after the last batch of each epoch (before any swapping)."""

    def on_train_begin(self, logs=None):
        self.ends, self.starts = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.last = [w.copy() for w in self.model.get_weights()]

    def on_epoch_begin(self, epoch, logs=None):
        self.starts.append([w.copy() for w in self.model.get_weights()])

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(self.last)


def test_swa_averages_epoch_end_weights_validates_them_and_resumes_from_raw():
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = _model()
    record = RecordRaw()
    averaging = WeightAveraging("swa", start_epoch=2)
    history = model.fit(x, y, batch_size=8, epochs=5, validation_data=(x, y), verbose=0,
                        callbacks=[averaging, record], shuffle=False)
    expected = [np.mean([epoch[i] for epoch in record.ends[1:]], axis=0)
                for i in range(len(record.ends[0]))]
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The last validation score is the averaged model's.
    np.testing.assert_allclose(history.history["val_loss"][-1], model.evaluate(x, y, verbose=0), rtol=1e-5)
    # Each epoch continues from the raw weights of the epoch before, not from the average.
    for previous_end, start in zip(record.ends[:-1], record.starts[1:]):
        for a, b in zip(previous_end, start):
            np.testing.assert_array_equal(a, b)


def test_nt_asgd_starts_averaging_every_batch_once_the_monitor_stalls():
    model = _model()
    averaging = WeightAveraging("nt_asgd", monitor="val_loss", mode_direction="min", patience=2)
    averaging.set_model(model)
    averaging.on_train_begin()
    kernel = model.layers[0].kernel
    batch_values = []
    for epoch, val_loss in enumerate([1.0, 0.9, 0.95, 0.97, 0.99, 0.98]):
        averaging.on_epoch_begin(epoch)
        for batch in range(2):
            value = float(10 * epoch + batch)
            kernel.assign(np.full(kernel.shape, value, "float32"))
            averaging.on_train_batch_end(batch)
            if averaging.averaging:
                batch_values.append(value)
        averaging.on_epoch_end(epoch, {"val_loss": val_loss})
        # Not improved for 2 epochs after epoch 3 (index 3): averaging is on from epoch 4.
        assert averaging.averaging == (epoch >= 3)
    averaging.on_train_end()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), np.mean(batch_values))
    assert batch_values == [40.0, 41.0, 50.0, 51.0]


def test_warmup_cosine_schedule_and_constant_warmup():
    settings = TrainingConfig(epochs=10, learning_rate=0.01, lr_schedule="cosine", warmup_epochs=1,
                              min_learning_rate=0.001)
    schedule = learning_rate(settings, steps_per_epoch=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert values[0] == pytest.approx(0.0)
    assert values[1] == pytest.approx(0.005)
    assert values[2] == pytest.approx(0.01)
    assert 0.001 < values[3] < 0.01
    assert values[4] == pytest.approx(0.001)
    constant = learning_rate(TrainingConfig(learning_rate=0.01, warmup_epochs=2), steps_per_epoch=5)
    assert float(constant(5)) == pytest.approx(0.005)
    assert float(constant(10)) == pytest.approx(0.01) == float(constant(45))
    assert learning_rate(TrainingConfig(learning_rate=0.02), steps_per_epoch=5) == 0.02


def test_conflicting_or_invalid_schedule_settings_are_user_errors():
    from lstmkit.errors import UserError

    with pytest.raises(UserError, match="turn one off"):
        TrainingConfig(ema_momentum=0.99, weight_averaging="swa")
    with pytest.raises(UserError, match="warmup_epochs works with"):
        TrainingConfig(lr_schedule="plateau", warmup_epochs=1)
    with pytest.raises(UserError, match=r"plateau_factor must be in \(0, 1\), got 1.5"):
        TrainingConfig(plateau_factor=1.5)


def test_best_checkpoint_saves_improvements_atomically_and_never_non_finite_weights(tmp_path):
    from lstmkit.callbacks import BestCheckpoint

    model = _model()
    path = tmp_path / "best.keras"
    checkpoint = BestCheckpoint(path, "val_accuracy", "max", initial_best=0.5)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_accuracy": 0.5})  # not better than before the resume
    assert not path.exists()
    checkpoint.on_epoch_end(1, {"val_accuracy": float("nan")})
    assert not path.exists()
    checkpoint.on_epoch_end(2, {"val_accuracy": 0.6})
    saved = path.read_bytes()
    assert checkpoint.best == 0.6
    # Diverged weights with a metric that still looks better: not a checkpoint.
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    checkpoint.on_epoch_end(3, {"val_accuracy": 0.7})
    assert path.read_bytes() == saved and checkpoint.best == 0.6
    assert [p.name for p in tmp_path.iterdir()] == ["best.keras"]  # no temporary file left


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_the_plateau_schedule_halves_down_to_its_floor_then_stops_as_converged(capsys):
    """A learning rate of 0 cannot improve anything: the rate halves after each stall of
    ``plateau_patience`` epochs down to ``min_learning_rate``, then one more stall ends
    training long before the epoch cap. Without a floor it never ends training itself."""
    from lstmkit.callbacks import plateau_callback

    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    for floor, epochs_run in ((0.025, 2 * 3 + 3 + 1), (0.0, 40)):
        model = _model()
        model.trainable = False  # the loss never moves: every epoch is a stall
        model.compile(keras.optimizers.SGD(0.1), "mse")
        schedule = plateau_callback(TrainingConfig(lr_schedule="plateau", plateau_patience=3, plateau_factor=0.5,
                                                   min_learning_rate=floor), "val_loss", "min")
        history = model.fit(x, y, batch_size=8, epochs=40, validation_data=(x, y), verbose=0, callbacks=[schedule])
        assert len(history.history["loss"]) == epochs_run
    assert "converged: the learning rate is at its floor (0.025)" in capsys.readouterr().out
