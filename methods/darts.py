"""DARTS (Liu, Simonyan & Yang, ICLR 2019), first and second order.

First order (`darts`): alpha follows grad_alpha L_val(w, alpha) (the base class hooks).
Step order: each benchmark's own DARTS protocol, i.e. the space profile's order. NB201:
AutoDL-Projects exps/NAS-Bench-201-algos/DARTS-V1.py takes the weight step, then the
architecture step. NAS-Bench-1Shot1: automl/nasbench-1shot1 optimizers/darts/train_search.py
calls architect.step before the weight step (first and second order alike).
DARTS space: quark0/darts cnn/train_search.py calls architect.step before the weight step;
the space's profile says so (arch_first=True).

Second order (`darts-2nd`), docs/reference/methods.md#darts (DARTS paper sec. 2.3):
  w' = w - xi * (grad_w L_train(w) + mu * buf + wd * w),  xi = current weight lr,
  g  = grad_alpha L_val(w') - xi * [grad_alpha L_train(w+) - grad_alpha L_train(w-)] / (2r),
  w+- = w +- r v,  v = grad_w' L_val(w'),  r = 0.01 / ||v||.
Step order: architecture first on every space (AutoDL-Projects DARTS-V2.py on NB201; the
1Shot1 train_search.py with --unrolled on NAS-Bench-1Shot1).
"""
from __future__ import annotations

import torch

from methods.base import Batch, SearchMethod, StepContext, accuracy


class Darts(SearchMethod):
    name = "darts"
    arch_first = None  # the space profile's order (see the module docstring)


def _grads(loss, tensors) -> list[torch.Tensor]:
    gs = torch.autograd.grad(loss, tensors, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, tensors)]


def unrolled_arch_grad(method: SearchMethod, train_batch: Batch, valid_batch: Batch,
                       optimizer: torch.optim.SGD, r_scale: float = 0.01):
    """The second-order DARTS gradient of L_val w.r.t. every architecture tensor.

    Returns (grads, valid_loss, valid_logits). Weights are read, never written: the virtual
    step and the finite differences run on copies through torch.func.functional_call.
    """
    group = optimizer.param_groups[0]
    xi, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
    named = dict(method.supernet.named_parameters())
    names, w = list(named), [p.detach() for p in named.values()]
    arch = method.arch_parameters()

    # Virtual step w' on the training batch (alpha held fixed).
    w_req = [t.clone().requires_grad_() for t in w]
    loss_t, _ = method.loss(method.eval_weights(), train_batch, dict(zip(names, w_req)))
    g_w = _grads(loss_t, w_req)
    w_prime = []
    for p, t, g in zip(named.values(), w, g_w):
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        step = g + wd * t + (mu * buf if buf is not None else 0.0)
        w_prime.append((t - xi * step).requires_grad_())

    # grad of L_val(w', alpha) w.r.t. alpha and w'.
    loss_v, logits_v = method.loss(method.mixing_weights(), valid_batch, dict(zip(names, w_prime)))
    g_all = _grads(loss_v, arch + w_prime)
    d_alpha, v = g_all[:len(arch)], g_all[len(arch):]

    # Finite-difference Hessian-vector product  d^2 L_train / (d alpha d w) . v
    r = r_scale / torch.cat([t.flatten() for t in v]).norm().clamp_min(1e-12)
    hv = []
    for sign in (1.0, -1.0):
        w_pm = {n: t + sign * r * vi for n, t, vi in zip(names, w, v)}
        loss_pm, _ = method.loss(method.mixing_weights(), train_batch, w_pm)
        hv.append(_grads(loss_pm, arch))
    grads = [da - xi * (gp - gm) / (2 * r) for da, gp, gm in zip(d_alpha, *hv)]
    return grads, loss_v, logits_v


class Darts2nd(SearchMethod):
    name = "darts-2nd"
    arch_first = True
    # AutoDL-Projects exps/algos/DARTS-V2.py clips `network.parameters()` (alpha is an
    # nn.Parameter of its TinyNetworkDarts): at that moment alpha.grad holds this iteration's
    # unrolled gradient (set in backward_step_unrolled) plus d L_train / d alpha from the
    # weight step's backward. The 1Shot1 code's alphas are Variables outside parameters().
    clip_arch_spaces = ("nb201",)

    def arch_in_clip(self, weights):
        # softmax(alpha) with its graph: the backward adds d L_train / d alpha to the
        # architecture step's gradient still in alpha.grad (cleared by the next arch step)
        return self.mixing_weights(), self.arch_parameters()


    def arch_step(self, train_batch: Batch, valid_batch: Batch, ctx: StepContext) -> dict:
        self.arch_optimizer.zero_grad(set_to_none=True)
        grads, loss, logits = unrolled_arch_grad(self, train_batch, valid_batch, ctx.w_optimizer)
        for p, g in zip(self.arch_parameters(), grads):
            p.grad = g
        self.arch_optimizer.step()
        return {"valid_loss": loss.item(), "valid_acc": accuracy(logits, valid_batch[1])}
