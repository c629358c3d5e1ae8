"""One training loop for surrogates and diagnostics, with small task objects for what differs.

* :mod:`~surrogates.training.config`: :class:`~surrogates.training.config.TrainingConfig`, the settings
  every run shares (the surrogates' and diagnostics' configs extend it), and the data split.
* :mod:`~surrogates.training.loop`: the loop (phases, LR schedule, AdamW, DDP under ``torchrun``,
  atomic checkpoints and exact resumption, TensorBoard, tqdm).
* :mod:`~surrogates.training.surrogate`: the surrogate task (JEPA: pretrain, readout, finetune) and ``train``.
* :mod:`~surrogates.training.diagnostics`: the diagnostic task (any kind of :mod:`surrogates.diagnostics`)
  and ``train_diagnostic``.
"""
