"""A whole-sequence LSTM for TensorFlow on CPU, with the weight gradients taken the way cuDNN
takes them: once, as one large product after the time loop.

Keras's generic loop (and TensorFlow's automatic differentiation of it) multiplies each
step's input by the kernel inside the loop and, going backwards, adds every step's small
``x_t^T dz_t`` and ``h_{t-1}^T dz_t`` into the weight gradients: four small matrix products
per step. Here the input projection of all steps is one [time·batch, features] product before
the loop; the backward loop does only what must be sequential (one ``dz_t R^T`` per step);
and the kernel, recurrent-kernel and input gradients are three large products at the end.

Measured on 2 cores (``python benchmarks/run.py lstm_throughput``; figures in
BENCHMARKS.md): the large products are where a CPU is efficient, so the gain grows with the
layer's width. TensorFlow's own fused ``BlockLSTMV2`` was measured too and lost (its CPU
kernel multiplies through Eigen, not oneDNN: 0.44x of Keras's loop at 128 units, 0.23x at
512).

Gate order inside is i, f, o, c (the three sigmoid gates first). The candidate's tanh is
computed as ``2·sigmoid(2z) - 1`` so that one sigmoid covers all four gates: the factor 2
is folded into the candidate's columns of the weights before the loop. Masked steps keep
the previous state, as in Keras; the caller turns states into Keras's masked outputs.
"""

import tensorflow as tf


def candidate_scaled(weights):
    """``weights`` ([..., 4·units], gates i, f, o, c) with the candidate's columns doubled."""
    units = weights.shape[-1] // 4
    scale = tf.concat([tf.ones([3 * units], weights.dtype), tf.fill([units], tf.cast(2, weights.dtype))], 0)
    return weights * scale


def lstm_sequence(inputs, h0, c0, kernel, recurrent_kernel, bias, step_mask=None):
    """Run an LSTM over time-major ``inputs`` [time, batch, features].

    ``kernel``, ``recurrent_kernel`` and ``bias`` are in gate order i, f, o, c with the
    candidate's columns already doubled (``candidate_scaled``). ``step_mask`` is
    [time, batch, 1] in the inputs' dtype (1 = a real step; a masked step keeps the state)
    or None.

    Returns the hidden state after every step [time, batch, units] and the last cell state.
    """
    if step_mask is None:
        step_mask = tf.zeros([0, 1, 1], inputs.dtype)  # "no mask": a loop without the carry
    return _lstm_sequence(inputs, h0, c0, kernel, recurrent_kernel, bias, step_mask)


def _array(dtype, steps):
    return tf.TensorArray(dtype, size=steps)


@tf.custom_gradient
def _lstm_sequence(inputs, h0, c0, kernel, recurrent_kernel, bias, step_mask):
    # Measured here: one element-wise pass over a [time, batch, 4·units] tensor costs about as
    # much as one of the large products (memory-bound), while element-wise work inside the
    # loop stays in cache. So the loops do all element-wise work step by step (reading their
    # step's slice), and only the products run over the whole sequence.
    masked = step_mask.shape[0] != 0
    steps = tf.shape(inputs)[0]
    dtype = inputs.dtype
    features, gates = kernel.shape
    shape = tf.shape(inputs)
    projected = tf.reshape(tf.nn.bias_add(tf.matmul(tf.reshape(inputs, [-1, features]), kernel), bias),
                           [shape[0], shape[1], gates])

    def forward(t, h, c, hs, c_previous, acts):
        activations = tf.sigmoid(projected[t] + tf.matmul(h, recurrent_kernel))
        i, f, o, scaled_candidate = tf.split(activations, 4, axis=1)
        c_new = f * c + i * (2 * scaled_candidate - 1)
        h_new = o * tf.tanh(c_new)
        if masked:  # a masked step leaves the state as it was
            keep = step_mask[t]
            h_new = h + keep * (h_new - h)
            c_new = c + keep * (c_new - c)
        return (t + 1, h_new, c_new, hs.write(t, h_new), c_previous.write(t, c),
                acts.write(t, activations))

    _, _, c_last, hs, c_previous, acts = tf.while_loop(
        lambda t, *_: t < steps, forward,
        (0, h0, c0, _array(dtype, steps), _array(dtype, steps), _array(dtype, steps)))
    hidden = hs.stack()
    cell_previous = c_previous.stack()
    activations = acts.stack()

    def gradient(d_hidden, d_c_last):
        d_hidden = tf.zeros_like(hidden) if d_hidden is None else d_hidden
        d_c_last = tf.zeros_like(c0) if d_c_last is None else d_c_last
        recurrent_transposed = tf.transpose(recurrent_kernel)

        def backward(t, dh_next, dc_next, dzs):
            # With s the gates' activations and g = 2·s_c - 1 the candidate:
            #   c = f·c_prev + i·g,  h = o·tanh(c),  s' = s·(1 - s)
            s = activations[t]
            i, f, o, scaled_candidate = tf.split(s, 4, axis=1)
            c_prev = cell_previous[t]
            candidate = 2 * scaled_candidate - 1
            tanh_c = tf.tanh(f * c_prev + i * candidate)
            dh = d_hidden[t] + dh_next
            dc = dc_next + tf.raw_ops.TanhGrad(y=tanh_c, dy=dh * o)
            if masked:
                # Only a real step's share goes through the cell; a masked step's passes
                # straight to the state it kept.
                keep = step_mask[t]
                dh_kept, dc_kept = keep * dh, keep * dc
            else:
                dh_kept, dc_kept = dh, dc
            d_activations = tf.concat([dc_kept * candidate, dc_kept * c_prev, dh_kept * tanh_c,
                                       2 * dc_kept * i], axis=1)
            dz = tf.raw_ops.SigmoidGrad(y=s, dy=d_activations)
            dh_previous = tf.matmul(dz, recurrent_transposed)
            dc_previous = dc_kept * f
            if masked:
                dh_previous += dh - dh_kept
                dc_previous += dc_next - keep * dc_next
            return t - 1, dh_previous, dc_previous, dzs.write(t, dz)

        _, dh0, dc0, dzs = tf.while_loop(
            lambda t, *_: t >= 0, backward,
            (steps - 1, tf.zeros_like(h0), d_c_last, _array(dtype, steps)))
        # The three large products that per-step differentiation would do as 3·time small ones.
        dz = tf.reshape(dzs.stack(), [-1, gates])
        h_previous = tf.reshape(tf.concat([h0[None], hidden[:-1]], 0), [-1, gates // 4])
        d_inputs = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), shape)
        d_kernel = tf.matmul(tf.reshape(inputs, [-1, features]), dz, transpose_a=True)
        d_recurrent = tf.matmul(h_previous, dz, transpose_a=True)
        return (d_inputs, dh0, dc0, d_kernel, d_recurrent, tf.reduce_sum(dz, 0),
                tf.zeros_like(step_mask))

    return (hidden, c_last), gradient
