"""A training progress bar (tqdm): steps done, the latest loss and the time left.

The Trainer's own bar is off (``disable_tqdm``) because it shows neither the weighted loss
nor anything useful when resumed; this one starts at the resumed step.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class TrainingProgress(TrainerCallback):
    """One bar per training run, on the main process only."""

    def __init__(self, *, enabled: bool = True):
        self.enabled = enabled
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        if self.enabled and state.is_local_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step", dynamic_ncols=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
