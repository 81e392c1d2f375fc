"""Vadam on Bayesian linear regression, where the exact posterior is known in closed form.

Model: y = X w + e, e ~ N(0, 1), prior w ~ N(0, 1/lambda). Exact posterior precision
P = X^T X + lambda I and mean P^-1 X^T y. The loss handed to Vadam is the MEAN per-example
negative log-likelihood, 0.5 * (y - x.w)^2.
"""
import math

import pytest
import torch

from methods.vadam import Vadam


def _problem(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    # Rademacher features with different scales: distinct precision diagonals, light tails.
    X = (torch.randint(0, 2, (n, 3), generator=g).double() * 2 - 1) * scales
    w_true = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    y = X @ w_true + torch.randn(n, generator=g, dtype=torch.float64)
    lam = 1.0
    P = X.T @ X + lam * torch.eye(3, dtype=torch.float64)
    mean = torch.linalg.solve(P, X.T @ y)
    return X, y, lam, P, mean


def _run(X, y, lam, batch, steps, lr, lr_end, seed=1):
    n = len(y)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(seed)
    opt = Vadam([w], train_set_size=n, lr=lr, betas=(0.9, 0.999), prior_prec=lam, prec_init=lam,
                generator=gen)
    avg, count = torch.zeros(3, dtype=torch.float64), 0
    for t in range(steps):
        # Cosine learning-rate decay from lr to lr_end.
        opt.param_groups[0]["lr"] = lr_end + 0.5 * (lr - lr_end) * (1 + math.cos(math.pi * t / steps))
        idx = torch.randint(0, n, (batch,), generator=gen)

        def closure():
            opt.zero_grad()
            loss = 0.5 * ((y[idx] - X[idx] @ w) ** 2).mean()
            loss.backward()
            return loss
        opt.step(closure)
        if t >= steps // 2:  # iterate averaging over the second half
            avg += w.detach()
            count += 1
    return w, opt, avg / count


@pytest.mark.slow
def test_mean_within_half_posterior_std():
    X, y, lam, P, mean = _problem()
    w, opt, avg = _run(X, y, lam, batch=20, steps=3000, lr=0.05, lr_end=1e-4)
    post_std = torch.linalg.inv(P).diagonal().sqrt()
    err = ((avg - mean).abs() / post_std)
    assert err.max().item() < 0.5, (avg, mean, post_std)


@pytest.mark.slow
def test_batch_one_precision_matches_exact_diagonal():
    X, y, lam, P, mean = _problem()
    w, opt, _ = _run(X, y, lam, batch=1, steps=5000, lr=0.02, lr_end=1e-3)
    n = len(y)
    prec = n * opt.state[w]["exp_avg_sq"] + lam
    rel = (prec - P.diagonal()).abs() / P.diagonal()
    assert rel.max().item() < 0.2, (prec, P.diagonal())
    # sigma() is the same quantity, as a standard deviation.
    assert torch.allclose(opt.sigma(w), prec.rsqrt())


def test_initial_sigma_and_bad_arguments():
    p = torch.zeros(4, requires_grad=True)
    opt = Vadam([p], train_set_size=25000, prior_prec=1.0, prec_init=1.0)
    assert torch.allclose(opt.sigma(p), torch.ones(4))  # author defaults: initial sigma = 1
    with pytest.raises(ValueError):
        Vadam([p], train_set_size=10, prior_prec=2.0, prec_init=1.0)
    with pytest.raises(ValueError):
        opt.step(None)


def test_mean_of_squares_with_several_samples():
    # Loss linear in p with a sample-dependent slope: g_k = eps_k-dependent; check s uses mean g^2.
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    opt = Vadam([p], train_set_size=1, prior_prec=1.0, prec_init=1.0, num_samples=4, generator=gen,
                betas=(0.0, 0.0))
    seen = []

    def closure():
        opt.zero_grad()
        loss = 0.5 * (p ** 2).sum()  # gradient = the sampled value itself
        loss.backward()
        seen.append(p.detach().clone())
        return loss
    opt.step(closure)
    g = torch.cat(seen)
    assert torch.allclose(opt.state[p]["exp_avg_sq"], (g ** 2).mean().reshape(1))
    assert not torch.allclose(opt.state[p]["exp_avg_sq"], (g.mean() ** 2).reshape(1))


def test_one_hand_computed_step():
    """One step written out from the update rule (Khan et al. 2018, Vadam; docs/reference/methods.md#balenas):
    the sample, the prior term in m, the data term in s, both bias corrections, and lambda/N
    in the denominator all move the result here."""
    N, lam, prec_init, lr, (b1, b2) = 4, 2.0, 6.0, 0.1, (0.9, 0.999)
    mu0 = torch.tensor([0.5, -1.0], dtype=torch.float64)
    c = torch.tensor([3.0, 0.5], dtype=torch.float64)   # loss 0.5 * sum(c p^2): gradient c * p
    p = mu0.clone().requires_grad_()
    opt = Vadam([p], train_set_size=N, lr=lr, betas=(b1, b2), prior_prec=lam, prec_init=prec_init,
                generator=torch.Generator().manual_seed(7))
    seen = []

    def closure():
        opt.zero_grad()
        seen.append(p.detach().clone())
        loss = 0.5 * (c * p ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)

    s0 = (prec_init - lam) / N                                 # 1.0
    sigma0 = 1 / math.sqrt(N * s0 + lam)                       # 1/sqrt(6)
    eps = torch.randn(2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    sample = mu0 + eps * sigma0
    assert torch.allclose(seen[0], sample, rtol=0, atol=1e-15)
    g = c * sample
    m1 = (1 - b1) * (g + lam / N * mu0)
    s1 = b2 * s0 + (1 - b2) * g ** 2
    mu1 = mu0 - lr * (m1 / (1 - b1)) / ((s1 / (1 - b2)).sqrt() + lam / N)
    assert torch.allclose(opt.state[p]["exp_avg"], m1, rtol=1e-12)
    assert torch.allclose(opt.state[p]["exp_avg_sq"], s1, rtol=1e-12)
    assert torch.allclose(p.detach(), mu1, rtol=1e-12)
    assert torch.allclose(opt.sigma(p), (N * s1 + lam).rsqrt(), rtol=1e-12)


def test_strong_prior_without_data_gives_the_prior():
    """No data gradient: q must shrink to the prior N(0, 1/lambda): mu -> 0 and
    sigma -> lambda^-1/2 (here 0.2, from an initial 0.1)."""
    lam, N = 25.0, 10
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = Vadam([p], train_set_size=N, lr=0.1, betas=(0.9, 0.9), prior_prec=lam, prec_init=100.0,
                generator=torch.Generator().manual_seed(0))
    assert torch.allclose(opt.sigma(p), torch.full((2,), 0.1, dtype=torch.float64))

    def closure():
        opt.zero_grad()
        loss = 0.0 * p.sum()
        loss.backward()
        return loss
    for _ in range(300):
        opt.step(closure)
    assert p.detach().abs().max() < 1e-3
    assert torch.allclose(opt.sigma(p), torch.full((2,), lam ** -0.5, dtype=torch.float64), rtol=1e-6)


def test_spread_of_the_samples_is_sigma():
    """The samples alpha~ = mu + eps * sigma have standard deviation sigma (0.3 here, so sigma^2
    or sigma^-1 would show) around mu."""
    mu = torch.linspace(-1, 1, 100, dtype=torch.float64)
    p = mu.clone().requires_grad_()
    opt = Vadam([p], train_set_size=1, prior_prec=1.0, prec_init=1 / 0.09, num_samples=400,
                generator=torch.Generator().manual_seed(3))
    assert torch.allclose(opt.sigma(p), torch.full((100,), 0.3, dtype=torch.float64))
    seen = []

    def closure():
        opt.zero_grad()
        seen.append(p.detach() - mu)
        loss = 0.0 * p.sum()
        loss.backward()
        return loss
    opt.step(closure)
    dev = torch.stack(seen)                        # 400 samples x 100 coordinates
    assert abs(dev.std().item() - 0.3) < 0.01      # 40,000 draws: standard error ~0.001
    assert abs(dev.mean().item()) < 0.01
