"""The fast CUDA path of training and of the search's weight and architecture steps (issue 21).

Measured on one H200, the released step sizes run at a few percent of the GPU: the time goes to
small-channel NCHW BatchNorm and depthwise kernels and to hundreds of launches per step, not to
arithmetic. Each lever is a named :class:`~hinas.engine.config.RunConfig` switch, on in the
``gpu`` and ``paper`` profiles; on the CPU only ``channels_last`` acts (the others are CUDA things):

* ``cuda_graphs``: the whole optimisation step (zero grads, forward, loss, backward, clip,
  optimiser step) is captured once as a CUDA graph and replayed. The batch is copied into static
  input tensors first (the device batch stream stays outside the graph, so its seeded draws are
  those of the eager path); the learning rate lives in a device tensor per parameter group
  (:func:`set_lr` fills it), so the poly/cosine schedules need no re-capture. The first
  :data:`WARMUP_STEPS` steps run eagerly (lazy optimiser state, cuDNN autotuning): they are
  ordinary steps of the run. A capture that fails falls back to eager steps with one warning,
  and the run's summary says so.
* ``fused_optimizer``: SGD's fused kernel (needed by the graphs: it takes the tensor learning
  rate) and capturable Adam for the architecture step.
* ``cudnn_benchmark``: cuDNN picks the fastest convolution algorithm per shape.
* ``native_batchnorm``: BatchNorm through PyTorch's own kernels rather than cuDNN's; with
  ``channels_last`` they reduce over a 2-D grid instead of one block per channel.
* ``channels_last``: NHWC activations; the one lever that also acts on the CPU (oneDNN's NHWC
  convolutions; :data:`CPU_LEVERS`).

All of them compute the same step as the eager path (float rounding apart: other kernels sum
in another order); ``tests/test_fast_path.py`` checks it on a GPU and
``hinas bench gpu-speed`` measures what each lever buys, beside the released code's own step.
``amp_bf16`` is a different thing (another precision) and stays a separate switch.
"""

from __future__ import annotations

import contextlib
import sys
import types

import torch
from torch import nn

from hinas.engine import common

WARMUP_STEPS = 3  # eager steps before the capture: optimiser state, cuDNN autotuning, lazy init
LEVERS = ("cuda_graphs", "fused_optimizer", "cudnn_benchmark", "native_batchnorm", "channels_last")
# the levers that act on the CPU too (oneDNN's NHWC convolutions; hinas bench cpu-speed measures it)
CPU_LEVERS = ("channels_last",)


def active_levers(cfg, device) -> dict:
    """Which levers this run uses (on the CPU only :data:`CPU_LEVERS`; no graphs under several processes)."""
    on_cuda = torch.device(device).type == "cuda"
    out = {name: bool(getattr(cfg, name)) and (on_cuda or name in CPU_LEVERS) for name in LEVERS}
    if common.world_size() > 1:  # the graphs would capture the all-reduce; eager under DDP
        out["cuda_graphs"] = False
    # the graph's optimiser step reads its learning rate from a device tensor: fused SGD only
    out["cuda_graphs"] = out["cuda_graphs"] and out["fused_optimizer"]
    return out


def capture_steps(cfg, device) -> int:
    """Steps a run takes before its steps are graph replays (0 when they never are)."""
    return WARMUP_STEPS + 1 if active_levers(cfg, device)["cuda_graphs"] else 0


@contextlib.contextmanager
def backend_flags(cfg, device):
    """``cudnn.benchmark`` for the life of a run, then the caller's setting again."""
    before = torch.backends.cudnn.benchmark
    if active_levers(cfg, device)["cudnn_benchmark"]:
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def autocast_for(cfg, device):
    """bf16 autocast when ``amp_bf16`` (CUDA, or the CPU's oneDNN bf16 kernels); its weight cache
    off under graph capture."""
    dev = torch.device(device)
    graphs = active_levers(cfg, dev)["cuda_graphs"]
    kind = "cuda" if dev.type == "cuda" else "cpu"
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=bool(cfg.amp_bf16), cache_enabled=not graphs)


# ---------------------------------------------------------------------------------------------
# the network: memory format and BatchNorm kernels
# ---------------------------------------------------------------------------------------------
def _native_batch_norm(self, x: torch.Tensor) -> torch.Tensor:
    """``_BatchNorm.forward`` with ``cudnn_enabled=False``: the same arithmetic (biased variance
    to normalise, unbiased into the running variance), PyTorch's kernels."""
    self._check_input_dim(x)
    factor = 0.0 if self.momentum is None else self.momentum
    if self.training and self.track_running_stats and self.num_batches_tracked is not None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
    use_batch = self.training or (self.running_mean is None and self.running_var is None)
    keep = not self.training or self.track_running_stats
    return torch.batch_norm(x, self.weight, self.bias, self.running_mean if keep else None,
                            self.running_var if keep else None, use_batch, factor, self.eps, False)


def use_native_batchnorm(module: nn.Module) -> int:
    """Route every BatchNorm of ``module`` through PyTorch's own kernels; returns how many.
    Parameters, buffers and ``state_dict`` keys are unchanged."""
    n = 0
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.momentum is None:  # cumulative averages read the counter on the host: not capturable
                continue
            m.forward = types.MethodType(_native_batch_norm, m)
            n += 1
    return n


def prepare_network(model: nn.Module, cfg, device) -> nn.Module:
    """The network as the fast path runs it (memory format, BatchNorm kernels); unchanged on the CPU."""
    levers = active_levers(cfg, device)
    if levers["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    if levers["native_batchnorm"]:
        use_native_batchnorm(model)
    return model


# ---------------------------------------------------------------------------------------------
# optimisers
# ---------------------------------------------------------------------------------------------
def set_lr(opt, lr: float) -> None:
    """Set every group's learning rate to ``lr`` x its ``lr_factor`` (1 when absent): a float, or
    filled into the group's device tensor when the step is a captured graph."""
    for g in opt.param_groups:
        value = lr * g.get("lr_factor", 1.0)
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(value)
        else:
            g["lr"] = value


def arm_optimizer(opt, cfg, device) -> None:
    """Switch an optimiser (new, or just restored from a checkpoint, which brings back the saved
    group flags) to the fused/capturable kernels; a no-op unless ``fused_optimizer`` is active.

    SGD: fused, the learning rate a device tensor when the steps are graphs. Adam: capturable
    (its step counter on the device)."""
    levers = active_levers(cfg, device)
    if not levers["fused_optimizer"]:
        return
    dev = torch.device(device)
    for g in opt.param_groups:
        if isinstance(opt, torch.optim.SGD):
            g["fused"], g["foreach"] = True, False
            if levers["cuda_graphs"] and not isinstance(g["lr"], torch.Tensor):
                g["lr"] = torch.tensor(float(g["lr"]), dtype=torch.float32, device=dev)
        elif isinstance(opt, torch.optim.Adam):
            g["capturable"] = True
            # its warm-up steps run uncaptured on purpose: no warning about it
            opt._warned_capturable_if_run_uncaptured = True
    if isinstance(opt, torch.optim.Adam):
        for state in opt.state.values():
            if "step" in state:
                state["step"] = state["step"].to(dev, torch.float32)


# ---------------------------------------------------------------------------------------------
# the step: eager, or one CUDA graph replayed
# ---------------------------------------------------------------------------------------------
class Stepper:
    """One optimisation step, ``stepper(stream) -> loss``: the next batch of ``stream`` on the
    device, then ``body(x, y)`` (which returns the loss), eagerly or as a replayed CUDA graph.

    A graph is captured per batch shape (an epoch's last batch is often smaller), each after
    its own :data:`WARMUP_STEPS` eager steps, each with its own static inputs and memory pool.
    The returned loss is a fresh tensor (a graph's output is overwritten at its next replay).
    ``mode`` says how the steps ran: ``eager``, ``graph`` or ``eager (capture failed: ...)``.
    """

    MAX_SHAPES = 4  # batch shapes with a graph of their own; more would mean a data bug

    def __init__(self, body, device, graphs: bool, warmup: int = WARMUP_STEPS, name: str = "step"):
        self.body, self.device, self.name = body, torch.device(device), name
        self.graphs = graphs and self.device.type == "cuda"
        self.warmup = warmup
        self.captures: dict = {}  # (x shape, y shape) -> {"warm", "static", "graph", "loss"}
        self.mode = "graph" if self.graphs else "eager"

    def __call__(self, stream) -> torch.Tensor:
        x, y = stream.next()
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return self.run(x, y)

    def run(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.graphs:
            return self.body(x, y)
        key = (tuple(x.shape), tuple(y.shape))
        c = self.captures.get(key)
        if c is None:
            if len(self.captures) >= self.MAX_SHAPES:
                return self._give_up(f"more than {self.MAX_SHAPES} batch shapes", x, y)
            c = self.captures[key] = {"warm": self.warmup, "static": (torch.empty_like(x), torch.empty_like(y)),
                                      "graph": None, "loss": None}
        sx, sy = c["static"]
        sx.copy_(x)
        sy.copy_(y)
        if c["graph"] is None:
            if c["warm"] > 0:
                c["warm"] -= 1
                return self._side_stream_step(sx, sy)
            try:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    c["loss"] = self.body(sx, sy)
            except Exception as exc:  # noqa: BLE001 - any capture error: the eager step is the same step
                torch.cuda.synchronize(self.device)
                return self._give_up(f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:160]}", x, y)
            c["graph"] = graph
        c["graph"].replay()
        return c["loss"].clone()

    def _side_stream_step(self, x, y) -> torch.Tensor:
        # warm-up steps run on a side stream, as the capture will (PyTorch's CUDA-graph recipe)
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            loss = self.body(x, y).detach().clone()
        main.wait_stream(side)
        return loss

    def _give_up(self, why: str, x, y) -> torch.Tensor:
        self.graphs, self.captures = False, {}
        self.mode = f"eager (capture failed: {why})"
        print(f"hinas: {self.name}: CUDA graph not used ({why}); continuing with eager steps", file=sys.stderr)
        return self.body(x, y)


def backward_step(net, opt, loss_fn, autocast, inputs, clip: float | None = None):
    """``body(x, y)`` of one optimisation step: fresh gradients of ``inputs`` only (the search's
    weight step needs no alpha/beta gradients and its architecture step no weight gradients; the
    released code computed and discarded them), the loss in fp32 after a possibly bf16 forward,
    gradients averaged over processes, clipped by value when ``clip``, one optimiser step."""
    inputs = list(inputs)

    def body(x, y):
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(net(x).float(), y)
        loss.backward(inputs=inputs)
        common.all_reduce_gradients(inputs)
        if clip is not None:
            torch.nn.utils.clip_grad_value_(inputs, clip)
        opt.step()
        return loss.detach()

    return body


def train_stepper(model, opt, loss_fn, cfg, device, autocast=None) -> Stepper:
    """The training iteration (REFERENCE 5.2: clip by value, SGD) as a :class:`Stepper`."""
    autocast = autocast if autocast is not None else autocast_for(cfg, device)
    body = backward_step(model, opt, loss_fn, autocast, model.parameters(), clip=cfg.grad_clip)
    return Stepper(body, device, active_levers(cfg, device)["cuda_graphs"], name="training step")


def search_steppers(net, opt_w, opt_a, loss_fn, cfg, device, autocast=None) -> tuple[Stepper, Stepper]:
    """The search's (architecture step, weight step) as two :class:`Stepper` s (two graphs)."""
    autocast = autocast if autocast is not None else autocast_for(cfg, device)
    graphs = active_levers(cfg, device)["cuda_graphs"] and cfg.memory_saving == "none"
    arch = Stepper(backward_step(net, opt_a, loss_fn, autocast, net.arch_parameters()), device, graphs,
                   name="architecture step")
    weight = Stepper(backward_step(net, opt_w, loss_fn, autocast, net.weight_parameters()), device, graphs,
                     name="weight step")
    return arch, weight


def describe(cfg, device, *steppers) -> dict:
    """What a run's summary records of its execution path."""
    out = {k: v for k, v in active_levers(cfg, device).items()}
    out["amp_bf16"] = bool(cfg.amp_bf16)
    out["steps"] = {s.name: s.mode for s in steppers}
    return out
