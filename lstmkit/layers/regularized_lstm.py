"""``RegularizedLSTM``: ``keras.layers.LSTM`` plus the AWD-LSTM regularizers, on the fast path.

Three ways through the time steps:

* the **fused kernel** (cuDNN on GPU, through Keras's private backend ``lstm``: see
  ``lstmkit.keras_internals``) whenever every option in use acts outside the recurrence:
  variational input/output dropout are masks on the sequences, weight drop is one mask
  on the recurrent kernel per batch (the masked kernel is handed to the fused op), AR/TAR
  and L1/L2 are losses;
* on a CPU with TensorFlow, for the same options, **the sequence kernel**
  (``lstmkit.layers.sequence_lstm``: the weight gradients as large products after the
  loop) from ``SEQUENCE_KERNEL_MIN_UNITS`` units, where it was measured faster;
* otherwise **lstmkit's step loop** on Keras's backend ``rnn`` (see ``_step_loop``).
  Recurrent dropout, zoneout and layer normalization change the step itself, so they
  only exist there; the layer logs once that it left the fused path and why.
"""

import logging

import keras
from keras import ops, tree

# The fused-kernel entry point and the generic time loop that keras.layers.LSTM itself
# uses come from there: Keras does not export them publicly.
from lstmkit import keras_internals
from lstmkit.layers.locked_dropout import LockedDropout

logger = logging.getLogger("lstmkit")

LAYER_NORM_EPSILON = 1e-5

CPU_KERNELS = ("auto", "sequence", "step")
# Training on 2 cores (benchmarks/lstm_throughput.py, BENCHMARKS.md), sequence kernel vs
# step loop: 0.76x at 128 units, 0.91x at 256, 1.28x at 512 (input 128) and 1.56x at 512
# (input 512). Its large products win once the layer is wide; below that the extra passes
# over [time, batch, 4·units] tensors in memory cost more than they save.
SEQUENCE_KERNEL_MIN_UNITS = 512


def gpu_visible() -> bool:
    """Whether the active Keras backend sees a GPU (where the fused kernel matters)."""
    name = keras.config.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if name == "torch":
        import torch

        return torch.cuda.is_available()
    if name == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    return False


def _is(function, *names) -> bool:
    return getattr(function, "__name__", None) in names


def keras_lstm_obstacles(layer) -> list[str]:
    """What keeps a ``keras.layers.LSTM`` (or subclass) off the fused kernel, by Keras's rules."""
    reasons = []
    if layer.recurrent_dropout:
        reasons.append(f"recurrent_dropout={layer.recurrent_dropout} (drops the state at every "
                       "step; weight_drop regularizes the same weights on the fast path)")
    if not _is(layer.activation, "tanh"):
        reasons.append(f"activation={getattr(layer.activation, '__name__', layer.activation)}"
                       " (the fused kernel needs tanh)")
    if not _is(layer.recurrent_activation, "sigmoid"):
        name = getattr(layer.recurrent_activation, "__name__", layer.recurrent_activation)
        reasons.append(f"recurrent_activation={name} (the fused kernel needs sigmoid)")
    if layer.unroll:
        reasons.append("unroll=True")
    if not layer.use_bias:
        reasons.append("use_bias=False")
    if layer.use_cudnn is False:
        reasons.append("use_cudnn=False")
    if layer.stateful and layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype:
        reasons.append(f"stateful under mixed precision ({layer.dtype_policy.name})")
    return reasons


def _layer_norm(x, gamma, beta=None):
    mean = ops.mean(x, axis=-1, keepdims=True)
    variance = ops.var(x, axis=-1, keepdims=True)
    x = (x - mean) * ops.rsqrt(variance + LAYER_NORM_EPSILON) * gamma
    return x if beta is None else x + beta


def _ifoc(x):
    """Reorder the gate blocks of the last axis from Keras's i, f, c, o to i, f, o, c."""
    i_f, c, o = ops.split(x, [x.shape[-1] // 2, 3 * x.shape[-1] // 4], axis=-1)
    return ops.concatenate([i_f, o, c], axis=-1)


def _per_gate_matmul(x, kernel, gate_masks):
    """``x @ kernel`` where each gate's block of columns sees ``x`` under its own mask."""
    blocks = ops.split(kernel, 4, axis=1)
    return ops.concatenate([ops.matmul(x * m, k) for m, k in zip(gate_masks, blocks)], axis=-1)


def _masked_mean(values, mask):
    """Mean of ``values`` ([batch, time]) over the steps where ``mask`` is true, in float32
    (a loss: under mixed precision the layer computes in 16 bits, the sum must not)."""
    values = ops.cast(values, "float32")
    if mask is None:
        return ops.mean(values)
    weights = ops.cast(mask, values.dtype)
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), 1.0)


@keras.saving.register_keras_serializable(package="lstmkit")
class RegularizedLSTM(keras.layers.LSTM):
    """A drop-in ``keras.layers.LSTM`` with every regularizer of AWD-LSTM and zoneout.

    Every option is off by default; with all of them off the layer computes exactly
    what ``keras.layers.LSTM`` computes with the same weights.

    Args:
        units: size of the hidden state.
        variational_dropout: dropout on the input with one mask per sequence, the same
            at every time step (Gal & Ghahramani 2016).
        output_dropout: the same on the output (the sequence, or the last output when
            ``return_sequences=False``; states returned by ``return_state`` are untouched).
        weight_drop: DropConnect on the recurrent kernel: one mask per batch, applied to
            the weights once before the time loop (Merity et al. 2018).
        zoneout_cell, zoneout_hidden: while training each unit of the cell / hidden state
            keeps its previous value with this probability, a new draw at every step; at
            inference the state is the expectation (Krueger et al. 2017).
        layer_norm: layer-normalize the input and recurrent projections and the cell
            before its output activation (Ba et al. 2016).
        activation_l2: activation regularization (AR): this weight times the mean square
            of the layer's output (after output dropout), added with ``add_loss``.
        temporal_activation_l2: temporal activation regularization (TAR): this weight
            times the mean square of ``h_t - h_{t-1}`` (before output dropout). Both are
            masked, and only added while training.
        cpu_kernel: how the plain LSTM step runs on TensorFlow without a GPU: ``"sequence"``
            (``sequence_lstm``: weight gradients as large products after the loop), ``"step"``
            (the per-step loop), or ``"auto"``: the sequence kernel from
            ``SEQUENCE_KERNEL_MIN_UNITS`` units, where it was measured faster.
        **kwargs: everything ``keras.layers.LSTM`` takes: ``return_sequences``,
            ``return_state``, ``go_backwards``, ``stateful``, ``recurrent_dropout`` (the
            slow, per-step variational recurrent dropout, kept as an explicit opt-in),
            L1/L2 through ``kernel_regularizer`` / ``recurrent_regularizer`` /
            ``bias_regularizer``. Defaults keep Keras's forget-gate bias of 1 and
            orthogonal recurrent initializer.
    """

    def __init__(
        self,
        units,
        variational_dropout=0.0,
        output_dropout=0.0,
        weight_drop=0.0,
        zoneout_cell=0.0,
        zoneout_hidden=0.0,
        layer_norm=False,
        activation_l2=0.0,
        temporal_activation_l2=0.0,
        cpu_kernel="auto",
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        options = dict(variational_dropout=variational_dropout, output_dropout=output_dropout,
                       weight_drop=weight_drop, zoneout_cell=zoneout_cell,
                       zoneout_hidden=zoneout_hidden)
        for name, rate in options.items():
            # zoneout 1 is allowed: the state never changes (a useful limiting case).
            zoneout = name.startswith("zoneout")
            if not (0.0 <= rate and (rate <= 1.0 if zoneout else rate < 1.0)):
                raise ValueError(f"{name} must be in [0, {'1]' if zoneout else '1)'}, got {rate!r}")
        for name, weight in (("activation_l2", activation_l2),
                             ("temporal_activation_l2", temporal_activation_l2)):
            if weight < 0:
                raise ValueError(f"{name} must be >= 0, got {weight!r}")
        self.variational_dropout = variational_dropout
        self.output_dropout = output_dropout
        self.weight_drop = weight_drop
        self.zoneout_cell = zoneout_cell
        self.zoneout_hidden = zoneout_hidden
        self.layer_norm = bool(layer_norm)
        self.activation_l2 = activation_l2
        self.temporal_activation_l2 = temporal_activation_l2

        seed = kwargs.get("seed")

        def derived(offset):
            return None if seed is None else seed + offset

        if keras.config.backend() == "tensorflow":
            # XLA (Keras's jit_compile="auto" on CPU) compiles this layer's step loop into
            # something about 2x slower than TensorFlow's own while loop (lstm_throughput);
            # on GPU keras.layers.LSTM already opts out for cuDNN.
            self.supports_jit = False
        # The layer's own policy, not the global one: a model loaded under float32 must keep
        # a mixed precision layer's dropout in its compute dtype.
        self.input_dropout_layer = LockedDropout(variational_dropout, seed=derived(1),
                                                 dtype=self.dtype_policy)
        self.output_dropout_layer = LockedDropout(output_dropout, seed=derived(2),
                                                  dtype=self.dtype_policy)
        self.weight_drop_seed = keras.random.SeedGenerator(derived(3))
        self.zoneout_seed = keras.random.SeedGenerator(derived(4))
        self._logged_path = False
        if cpu_kernel not in CPU_KERNELS:
            raise ValueError(f"cpu_kernel must be one of {', '.join(CPU_KERNELS)}, got {cpu_kernel!r}")
        self.cpu_kernel = cpu_kernel

    # ---------------------------------------------------------------- fused path
    def fused_kernel_obstacles(self) -> list[str]:
        """Every option of this layer that keeps it off the fused (cuDNN) kernel.

        Empty when the layer takes the fused kernel wherever the backend has one (TensorFlow
        or PyTorch on a GPU). Run-time conditions (right-padded masks) are not included.
        """
        reasons = keras_lstm_obstacles(self)
        if self.zoneout_cell or self.zoneout_hidden:
            reasons.append("zoneout (mixes old and new state inside every step)")
        if self.layer_norm:
            reasons.append("layer_norm (normalizes inside every step)")
        return reasons

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(sequences_shape, initial_state_shape)
        if self.layer_norm:
            gates = 4 * self.units
            self.input_norm_gamma = self.add_weight(shape=(gates,), initializer="ones",
                                                    name="input_norm_gamma")
            self.recurrent_norm_gamma = self.add_weight(shape=(gates,), initializer="ones",
                                                        name="recurrent_norm_gamma")
            self.cell_norm_gamma = self.add_weight(shape=(self.units,), initializer="ones",
                                                   name="cell_norm_gamma")
            self.cell_norm_beta = self.add_weight(shape=(self.units,), initializer="zeros",
                                                  name="cell_norm_beta")
        obstacles = self.fused_kernel_obstacles()
        if obstacles and not self._logged_path:
            self._logged_path = True
            level = logging.WARNING if gpu_visible() else logging.INFO
            logger.log(level, "RegularizedLSTM %r runs lstmkit's step loop, not the fused "
                       "cuDNN kernel, because of: %s", self.name, "; ".join(obstacles))

    # ---------------------------------------------------------------- forward pass
    def call(self, sequences, initial_state=None, mask=None, training=False):
        sequences = self.input_dropout_layer(sequences, training=training)
        result = super().call(sequences, initial_state=initial_state, mask=mask,
                              training=training)
        output, states = (result[0], result[1:]) if self.return_state else (result, ())
        output = self.output_dropout_layer(output, training=training)
        if training and self.activation_l2:
            squares = ops.mean(ops.square(output), axis=-1)
            step_mask = self._mask_for(mask) if self.return_sequences else None
            self.add_loss(self.activation_l2 * _masked_mean(squares, step_mask))
        return [output, *states] if self.return_state else output

    @staticmethod
    def _mask_for(mask):
        return mask[0] if tree.is_nested(mask) else mask

    def inner_loop(self, sequences, initial_state, mask, training=False):
        mask = self._mask_for(mask)
        cell = self.cell
        input_masks = None
        if training and cell.dropout:
            # Keras's own `dropout` argument: one input mask per sequence (one per gate
            # when recurrent_dropout is on too), as keras.layers.LSTM draws it.
            input_masks = cell.get_dropout_mask(sequences[:, 0, :])
            if not isinstance(input_masks, (list, tuple)):
                sequences = sequences * ops.expand_dims(input_masks, 1)
                input_masks = None
        recurrent_kernel = cell.recurrent_kernel
        if training and self.weight_drop:
            recurrent_kernel = keras.random.dropout(
                ops.convert_to_tensor(recurrent_kernel), self.weight_drop, seed=self.weight_drop_seed
            )
        need_tar = training and self.temporal_activation_l2 > 0
        return_all = self.return_sequences or need_tar

        result = None
        if self.use_cudnn in ("auto", True) and not self.fused_kernel_obstacles():
            try:
                result = keras_internals.fused_lstm(
                    sequences, initial_state[0], initial_state[1], mask,
                    kernel=cell.kernel, recurrent_kernel=recurrent_kernel, bias=cell.bias,
                    activation=cell.activation, recurrent_activation=cell.recurrent_activation,
                    return_sequences=return_all, go_backwards=self.go_backwards, unroll=self.unroll,
                )
            except NotImplementedError:
                result = None
        if result is None:
            if self.use_cudnn is True:
                raise ValueError("use_cudnn=True, but the fused kernel cannot run here: "
                                 + ("; ".join(self.fused_kernel_obstacles()) or "no GPU"))
            if self._sequence_kernel_applies():
                result = self._sequence_kernel(sequences, initial_state, mask, recurrent_kernel)
            else:
                result = self._step_loop(sequences, initial_state, mask, training, recurrent_kernel,
                                         input_masks)
        if need_tar:
            self._add_temporal_activation_loss(result[1], mask)
        return result

    # ---------------------------------------------------------------- CPU sequence kernel
    def _sequence_kernel_applies(self) -> bool:
        """Whether lstmkit's whole-sequence kernel (``sequence_lstm``) runs this layer: on
        TensorFlow without a GPU (where cuDNN is better), when the step itself is the plain
        LSTM step (the same conditions as the fused kernel's) and ``cpu_kernel`` picks it."""
        return (self.cpu_kernel_choice() == "sequence" and keras.config.backend() == "tensorflow"
                and not gpu_visible())

    def cpu_kernel_choice(self) -> str:
        """``"sequence"`` or ``"step"``: which loop this layer runs on a CPU with TensorFlow."""
        if self.fused_kernel_obstacles() or self.cpu_kernel == "step":
            return "step"
        if self.cpu_kernel == "auto" and self.units < SEQUENCE_KERNEL_MIN_UNITS:
            return "step"
        return "sequence"

    def _sequence_kernel(self, sequences, initial_state, mask, recurrent_kernel):
        import tensorflow as tf

        from lstmkit.layers.sequence_lstm import candidate_scaled, lstm_sequence

        cell = self.cell
        dtype = sequences.dtype
        inputs = tf.transpose(sequences, [1, 0, 2])  # time-major
        step_mask = None
        if mask is not None:
            step_mask = tf.cast(tf.transpose(mask)[:, :, None], dtype)
        if self.go_backwards:
            inputs = tf.reverse(inputs, [0])
            step_mask = None if step_mask is None else tf.reverse(step_mask, [0])

        def weights(w):
            return candidate_scaled(tf.cast(_ifoc(w), dtype))

        hidden, c_last = lstm_sequence(
            inputs, tf.cast(initial_state[0], dtype), tf.cast(initial_state[1], dtype),
            weights(cell.kernel), weights(recurrent_kernel), weights(cell.bias), step_mask)
        hidden.set_shape([sequences.shape[1], sequences.shape[0], self.units])
        outputs = hidden
        if step_mask is not None:
            # Keras's masked outputs: zero before a sequence's first real step (or at every
            # masked step with zero_output_for_mask), the previous output after it.
            shown = step_mask if self.zero_output_for_mask else tf.cumsum(step_mask, axis=0)
            outputs = tf.where(shown > 0, hidden, tf.zeros_like(hidden))
        return outputs[-1], tf.transpose(outputs, [1, 0, 2]), [hidden[-1], c_last]

    def _add_temporal_activation_loss(self, outputs, mask):
        differences = ops.mean(ops.square(outputs[:, 1:] - outputs[:, :-1]), axis=-1)
        pair_mask = None
        if mask is not None:
            mask = ops.cast(mask, "bool")
            if self.go_backwards:  # outputs are in processing order
                mask = ops.flip(mask, axis=1)
            pair_mask = ops.logical_and(mask[:, 1:], mask[:, :-1])
        self.add_loss(self.temporal_activation_l2 * _masked_mean(differences, pair_mask))

    def _step_loop(self, sequences, initial_state, mask, training, recurrent_kernel,
                   input_masks=None):
        """lstmkit's time loop, on Keras's backend ``rnn`` (which also handles masks and
        ``go_backwards`` exactly as for keras.layers.LSTM).

        Measured on CPU (TensorFlow 2.21, 2 cores): computing the input projection of all
        steps before the loop made training slower, not faster (the [time, batch,
        4 units] projection is read and its gradient written step by step, from memory
        rather than cache), so each step multiplies its own input. The gate columns are
        reordered once per batch (i, f, o, c) so the three sigmoid gates are one call.
        """
        cell = self.cell
        units = self.units
        zoneout = self.zoneout_cell > 0 or self.zoneout_hidden > 0
        recurrent_mask = None
        if training and cell.recurrent_dropout:
            recurrent_mask = cell.get_recurrent_dropout_mask(initial_state[0])
        # Per-gate masks (Keras's dropout with recurrent_dropout) and layer norm need the
        # two products apart; otherwise one joined product per step.
        separate = self.layer_norm or recurrent_mask is not None or input_masks is not None
        features = sequences.shape[-1]
        kernel, bias = cell.kernel, cell.bias
        if not separate:
            kernel_ifoc, recurrent_ifoc = _ifoc(kernel), _ifoc(recurrent_kernel)
        bias_ifoc = _ifoc(bias) if cell.use_bias else None

        step_inputs = sequences
        keep_width = 0
        if training and zoneout:
            # Every step's zoneout masks are drawn up front (1 = keep the previous value) so
            # the loop holds no random state; they travel beside the inputs.
            noise = keras.random.uniform((*ops.shape(sequences)[:2], 2 * units),
                                         seed=self.zoneout_seed, dtype=sequences.dtype)
            rates = ops.concatenate([
                ops.full((units,), self.zoneout_cell, dtype=sequences.dtype),
                ops.full((units,), self.zoneout_hidden, dtype=sequences.dtype),
            ])
            step_inputs = ops.concatenate([sequences, ops.cast(noise < rates, sequences.dtype)], -1)
            keep_width = 2 * units
        activation = cell.activation
        gate = cell.recurrent_activation

        def step(inputs, states):
            h_previous, c_previous = states[0], states[1]
            x = inputs[:, :features] if keep_width else inputs
            if not separate:
                z = ops.matmul(x, kernel_ifoc) + ops.matmul(h_previous, recurrent_ifoc)
            else:
                z_input = (ops.matmul(x, kernel) if input_masks is None
                           else _per_gate_matmul(x, kernel, input_masks))
                z_recurrent = (ops.matmul(h_previous, recurrent_kernel) if recurrent_mask is None
                               else _per_gate_matmul(h_previous, recurrent_kernel, recurrent_mask))
                if self.layer_norm:
                    z_input = _layer_norm(z_input, self.input_norm_gamma)
                    z_recurrent = _layer_norm(z_recurrent, self.recurrent_norm_gamma)
                z = _ifoc(z_input + z_recurrent)
            if bias_ifoc is not None:
                z = z + bias_ifoc
            sigmoid_gates, z_candidate = ops.split(z, [3 * units], axis=-1)
            i, f, o = ops.split(gate(sigmoid_gates), 3, axis=-1)
            c = f * c_previous + i * activation(z_candidate)
            c_out = _layer_norm(c, self.cell_norm_gamma, self.cell_norm_beta) if self.layer_norm else c
            h = o * activation(c_out)
            if zoneout:
                if keep_width:
                    keep_c, keep_h = inputs[:, features:features + units], inputs[:, features + units:]
                else:  # inference: the expectation
                    keep_c, keep_h = self.zoneout_cell, self.zoneout_hidden
                c = keep_c * c_previous + (1 - keep_c) * c
                h = keep_h * h_previous + (1 - keep_h) * h
            return h, [h, c]

        return keras_internals.rnn(
            step, step_inputs, list(initial_state), go_backwards=self.go_backwards, mask=mask,
            unroll=self.unroll, input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask, return_all_outputs=True,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            variational_dropout=self.variational_dropout,
            output_dropout=self.output_dropout,
            weight_drop=self.weight_drop,
            zoneout_cell=self.zoneout_cell,
            zoneout_hidden=self.zoneout_hidden,
            layer_norm=self.layer_norm,
            activation_l2=self.activation_l2,
            temporal_activation_l2=self.temporal_activation_l2,
            cpu_kernel=self.cpu_kernel,
        )
        return config
