"""The optimizer every task trains with unless it says otherwise
(``Task.configure_optimizer``), and the learning-rate schedules of lstmkit."""

from __future__ import annotations


def adam(settings, steps_per_epoch: int):
    """Adam with the ``TrainingConfig``'s learning-rate schedule, global-norm clipping and
    optional exponential moving average of the weights."""
    import keras

    return keras.optimizers.Adam(
        learning_rate=learning_rate(settings, steps_per_epoch),
        global_clipnorm=settings.global_clipnorm or None,
        use_ema=settings.ema_momentum > 0,
        ema_momentum=settings.ema_momentum or 0.99,
    )


def learning_rate(settings, steps_per_epoch: int):
    """The optimizer's learning rate for a ``TrainingConfig``: a float, or a warm-up +
    cosine ``keras.optimizers.schedules.CosineDecay`` counted in optimizer steps.

    ``"plateau"`` returns a float; ``plateau_callback`` does the reducing.
    """
    import keras

    warmup_steps = round(settings.warmup_epochs * steps_per_epoch)
    if settings.lr_schedule == "plateau" or (settings.lr_schedule == "constant" and not warmup_steps):
        return settings.learning_rate
    total_steps = max(settings.epochs * steps_per_epoch, warmup_steps + 1)
    if settings.lr_schedule == "cosine":
        alpha = min(settings.min_learning_rate / settings.learning_rate, 1.0)
    else:  # constant after the warm-up: a cosine that never leaves its peak
        alpha = 1.0
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else settings.learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=alpha,
        warmup_target=settings.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def warmup_cosine(peak: float, total_steps: int, warmup_share: float, final_share: float):
    """A linear warm-up over ``warmup_share`` of ``total_steps`` from ``final_share`` of
    ``peak`` to ``peak``, then cosine decay to ``final_share`` of it (about ULMFiT's
    slanted triangle)."""
    import keras

    warmup = max(int(total_steps * warmup_share), 1)
    return keras.optimizers.schedules.CosineDecay(
        peak * final_share, decay_steps=max(total_steps - warmup, 1), alpha=final_share,
        warmup_target=peak, warmup_steps=warmup)
