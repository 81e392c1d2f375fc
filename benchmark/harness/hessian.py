"""Stability diagnostic: the dominant eigenvalue of the Hessian of the validation loss with
respect to the architecture parameters (Zela et al., "Understanding and Robustifying DARTS").

Power iteration on exact Hessian-vector products (double backward), so the full Hessian is
never formed. Method-agnostic: it uses only `method.mixing_weights()`,
`method.arch_parameters()` and `method.loss(weights, batch)`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def dominant_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                        iters: int = 20, tol: float = 1e-4,
                        generator: torch.Generator | None = None) -> float:
    """Eigenvalue of largest magnitude of d^2 loss / d params^2 (signed), by power iteration.

    `loss_fn()` must build the loss from `params` afresh (it is differentiated twice).
    Stops when the Rayleigh quotient changes by less than `tol` (relative) or after `iters`.
    """
    params = [p for p in params]
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    norm = torch.sqrt(sum((x * x).sum() for x in v))
    v = [x / norm for x in v]
    eig = 0.0
    for i in range(iters):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        new = float(sum((h * x).sum() for h, x in zip(hv, v)))  # Rayleigh quotient v^T H v
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        if float(norm) == 0.0:
            return 0.0
        v = [h / norm for h in hv]
        if i > 0 and abs(new - eig) <= tol * max(abs(eig), 1e-12):
            return new
        eig = new
    return eig


def max_algebraic_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                             weight_decay: float = 0.0) -> float:
    """The largest ALGEBRAIC eigenvalue of d^2 (loss + weight_decay/2 ||params||^2) / d params^2,
    from the full Hessian (one Hessian-vector product per coordinate; symmetrised; the L2
    term adds weight_decay on the diagonal, as SmoothDARTS' analyzer adds
    `weight_decay * inp` to the gradient before differentiating again)."""
    params = [p for p in params]
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])
    n = flat.numel()
    rows = []
    for j in range(n):
        hv = torch.autograd.grad(flat[j], params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(h if h is not None else torch.zeros_like(p)).reshape(-1)
                               for h, p in zip(hv, params)]).detach())
    h = torch.stack(rows).double()
    h = (h + h.T) / 2 + weight_decay * torch.eye(n, dtype=h.dtype, device=h.device)
    return float(torch.linalg.eigvalsh(h.cpu()).max())


# What a space's source reports as its Hessian diagnostic (space attribute `hessian_diagnostic`):
#   "dominant"      the signed eigenvalue of largest magnitude of the validation loss' Hessian
#                   (power iteration; Zela et al.), the default
#   "abs_max_algebraic_wd"  |largest algebraic eigenvalue| of the Hessian of the validation
#                   loss plus the architecture weight decay's L2 term (SmoothDARTS
#                   optimizers/analyze.py `compute_Hw`/`_hessian`, line 177 adds
#                   weight_decay * alpha to the gradient; optimizers/darts/train_search.py
#                   lines 313-322: ev = max(eigvals(H)), then np.linalg.norm(ev))
HESSIAN_DIAGNOSTICS = ("dominant", "abs_max_algebraic_wd")


def hessian_max_eig(method, batch, seed: int = 0, iters: int = 20, kind: str = "dominant",
                    weight_decay: float = 0.0) -> float:
    """The diagnostic at the method's current mixing weights on one validation batch; `kind`
    one of HESSIAN_DIAGNOSTICS (weight_decay: the architecture's, for abs_max_algebraic_wd).

    Leaves the run untouched: supernet buffers (BN running statistics) are restored, the
    random start vector comes from its own generator (no global RNG is consumed), and no
    parameter receives a .grad. A compiled supernet runs eagerly here (double backward).
    """
    from spaces.base import uncompiled
    net = method.supernet
    buffers = {k: b.detach().clone() for k, b in net.named_buffers()}
    try:
        with uncompiled():
            loss_fn = lambda: method.loss(method.mixing_weights(), batch)[0]  # noqa: E731
            if kind == "abs_max_algebraic_wd":
                return abs(max_algebraic_eigenvalue(loss_fn, method.arch_parameters(), weight_decay))
            if kind != "dominant":
                raise ValueError(f"unknown Hessian diagnostic {kind!r}; valid: {', '.join(HESSIAN_DIAGNOSTICS)}")
            return dominant_eigenvalue(loss_fn, method.arch_parameters(), iters=iters,
                                       generator=torch.Generator().manual_seed(seed))
    finally:
        with torch.no_grad():
            for k, b in net.named_buffers():
                b.copy_(buffers[k])
