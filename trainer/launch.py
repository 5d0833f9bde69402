"""One place that builds the Accelerator every trainer command runs under (and sets TF32)."""

from __future__ import annotations

import os
from typing import Any


def make_accelerator(**kwargs: Any) -> Any:
    """An Accelerator that also spans processes on a CPU-only host.

    Under `torchrun` Accelerate joins the processes only on a GPU host, or on CPUs when told
    `cpu=True`; without it each CPU process would train alone on all the data and every one of
    them would write the same output directory.
    """
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not launched:
        # One process may train several models in turn (a worker, the tests), but Accelerate keeps
        # its settings in a process-wide singleton that refuses a second mixed-precision choice.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
    # DDP broadcasts the model's buffers at every forward: a collective, so ranks that score a
    # batch in different numbers of chunks would wait on each other forever. The buffers of a
    # transformer (position ids, rotary frequencies) never change, so there is nothing to sync.
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    if torch.cuda.is_available():  # TF32 matmuls for every trainer: ~free speed on Ampere+
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    return Accelerator(
        cpu=launched and not torch.cuda.is_available(), kwargs_handlers=[ddp], **kwargs
    )
