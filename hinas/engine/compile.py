"""``RunConfig.compile``: the training network through ``torch.compile``, with an eager fallback.

The module is compiled in place (``nn.Module.compile``), so its ``state_dict`` keys, the
checkpoints and the safetensors weights are those of the eager network. A graph that fails to
compile runs eagerly (``torch._dynamo.config.suppress_errors``), so the switch never stops a run;
results agree with eager ones within float tolerance. Only the derived network is compiled: the
supernet's Python loop over the (layer, level) grid would compile for minutes.
"""

from __future__ import annotations

BACKEND = "inductor"  # tests on the CPU use "eager" (no C++ compiler run)


def compile_module(module, enabled: bool = True):
    """Compile ``module`` in place when ``enabled``; returns it."""
    if not enabled:
        return module
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # fall back to eager on a compile error
    module.compile(backend=BACKEND)
    return module
