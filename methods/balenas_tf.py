"""BaLeNAS-TF (Zhang et al., CVPR 2022): BaLeNAS, then a training-free selection from q.

Selection: draw `num_candidates` architectures alpha ~ N(mu, sigma^2) and derive each
(space.derive), drop duplicates, score each with a training-free proxy (methods/proxies.py;
default NASWOT) on a randomly initialised standalone network (space.proxy_network where the space has one -- on the
DARTS space the 16-channel 8-cell evaluation network without auxiliary head, since the
36-channel 20-cell one costs about 8x per candidate; on the 1Shot1 spaces the NB101 network
with a 16-channel stem and He init, as NASWOT scores NB101 networks -- else space.network)
and one UNAUGMENTED batch, return the best (ties: first sampled).
The batch: NASWOT scores CIFAR-10 training images without augmentation
(BayesWatch/nas-without-training search.py lines 24 and 28, batch 128, `--augtype none`;
datasets/data.py lines 40-41 drop the random crop and flip). Here: `proxy_batch_size`
images of the architecture half (CIFAR-10 training images the weights never train on),
with the test transform (normalisation only), the first batch of a fresh shuffled pass of
ctx.eval_batches at each selection (the loop's checkpointed generator). All candidates of
one selection share that batch; the same batch serves synflow (only its shape) and grad_norm.
Applied at the last epoch and, every `select_every` epochs, during the search.

Records: the record's `genotype` stays argmax(mu) every epoch (the BaLeNAS trajectory). At a
selection epoch, `diagnostics` holds
  selected_genotype   the proxy's pick (at the last epoch: the method's final answer)
  selected_score      its proxy score
  tf_candidates       [{"genotype", "score"}] for every unique candidate, in sampling order
  tf_proxy, tf_sampled, tf_unique
and `final_genotype()` returns the last selection.
Each candidate's network is initialised under a private RNG seeded from (seed, epoch,
candidate rank), so scores are reproducible and the loop's RNG streams are untouched.

Values: K = 100 (assumed; docs/reference/departures.md#balenas-tf-selection), NASWOT batch 128 (Mellor et al.), proxy default
naswot (BaLeNAS paper), select_every 10 epochs (assumed); the rest as BaLeNAS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from methods.balenas import Balenas, BalenasOptions
from methods.base import Batch, StepContext, need_choice, need_int
from methods.proxies import PROXIES, score


@dataclass
class BalenasTFOptions(BalenasOptions):
    num_candidates: int = 100     # K samples from q (assumed)
    proxy: str = "naswot"         # naswot | synflow | grad_norm
    proxy_batch_size: int = 128   # unaugmented images scored (NASWOT search.py batch 128)
    select_every: int = 10        # epochs between selections during the search; 0 = end only (assumed)

    def __post_init__(self) -> None:
        super().__post_init__()
        need_int("num_candidates", self.num_candidates, 1)
        need_choice("proxy", self.proxy, tuple(PROXIES))
        need_int("proxy_batch_size", self.proxy_batch_size, 1)
        need_int("select_every", self.select_every, 0)


class BalenasTF(Balenas):
    name = "balenas-tf"
    Options = BalenasTFOptions

    def __init__(self, space, supernet, cfg, generator, device="cpu"):
        super().__init__(space, supernet, cfg, generator, device)
        self.select_gen = self.own_generator("select", 29)
        self.selected: str | None = None

    @classmethod
    def profile_overrides(cls, space: str, profile: str) -> dict[str, Any]:
        out = super().profile_overrides(space, profile)
        if profile == "smoke":  # seconds, not minutes, on a CPU
            out["method_options"] = {"num_candidates": 8, "proxy_batch_size": 32}
        return out

    def proxy_batch(self, ctx: StepContext) -> Batch:
        """One unaugmented batch of the architecture half (see the module docstring)."""
        if ctx.eval_batches is None:
            raise RuntimeError("balenas-tf scores its candidates on ctx.eval_batches, which this "
                               "caller does not provide")
        return next(ctx.eval_batches(self.opts.proxy_batch_size))

    def sample_candidates(self) -> tuple[list[str], int]:
        """Unique derived genotypes of `num_candidates` draws from q, in order of first draw."""
        seen: dict[str, None] = {}
        mus = {k: v.detach().cpu() for k, v in self.alphas.items()}
        sig = {k: v.cpu() for k, v in self.sigmas().items()}
        for _ in range(self.opts.num_candidates):
            draw = {k: mus[k] + sig[k] * torch.randn(mus[k].shape, generator=self.select_gen)
                    for k in mus}
            seen.setdefault(self.space.derive(draw), None)
        return list(seen), self.opts.num_candidates

    def proxy_network(self, genotype: str):
        """The network a candidate is scored on: the space's `proxy_network` where it has one
        (the DARTS space: C=16, 8 cells, no auxiliary head), else its standalone network."""
        make = getattr(self.space, "proxy_network", None)
        return make(genotype) if make is not None else self.space.network(genotype)

    def select(self, epoch: int, ctx: StepContext) -> dict:
        genotypes, drawn = self.sample_candidates()
        x, y = self.proxy_batch(ctx)
        rows = []
        for rank, g in enumerate(genotypes):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(self.cfg.seed) * 1_000_003 + epoch * 1009 + rank)
                net = self.proxy_network(g).to(x.device)
            rows.append({"genotype": g, "score": score(self.opts.proxy, net, x, y)})
        best = max(rows, key=lambda r: r["score"])  # first of equals wins
        self.selected = best["genotype"]
        return {"selected_genotype": best["genotype"], "selected_score": best["score"],
                "tf_candidates": rows, "tf_proxy": self.opts.proxy, "tf_sampled": drawn,
                "tf_unique": len(rows)}

    def epoch_end(self, epoch: int, ctx: StepContext) -> dict:
        diag = super().epoch_end(epoch, ctx)
        every = self.opts.select_every
        if epoch == ctx.epochs or (every > 0 and epoch % every == 0):
            diag.update(self.select(epoch, ctx))
        return diag

    def final_genotype(self) -> str:
        return self.selected if self.selected is not None else self.derive()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "selected": self.selected}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.selected = state.get("selected")
