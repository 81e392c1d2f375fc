"""Random search with weight sharing (RSPS; Li & Talwalkar, UAI 2019), the naive baseline.

Weight step: the supernet trained with ONE uniformly sampled architecture per step
(space.sample_weights: one-hot rows). No architecture step (the architecture half serves only
the selection). Selection, every `select_every` epochs and at the last: `num_candidates`
uniformly sampled architectures, each scored by the supernet's accuracy on one validation
batch of `valid_batch_size` images (the last ones the loop handed to arch_step), supernet in
eval mode; the best is the epoch's genotype (ties: first sampled).

NB201 settings (AutoDL-Projects' RANDOM-NAS, REFERENCE.md): 250 epochs, 100 candidates, one
validation batch of 512: the `paper` profile applies them. Assumed: the other weight
settings follow the profile (AutoDL's NB201 protocol); the selection each epoch
(`select_every` 1); before the first selection (epoch 0) the genotype is one uniform sample.
DARTS space (Li & Talwalkar's CNN code): 100 epochs, 1000 candidates on 640 validation
images, selection every 10 epochs (assumed); the source then re-scores its top 10 on the whole
validation half, a second stage not implemented here. Their grad_clip default (0.25) is the
PTB setting; the CNN value is not stated in the code, so the profile's 5 is kept (assumed).
Space-agnostic: uses only sample_weights and derive (on the DARTS space a sample is a whole
DARTS cell pair: 2 inputs per node, as their `sample_arch`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from methods.base import Batch, SearchMethod, StepContext, need_int, need_number
from spaces.base import Weights


@dataclass
class RandomWSOptions:
    num_candidates: int = 100     # architectures scored per selection (AutoDL RANDOM-NAS)
    valid_batch_size: int = 512   # validation images per candidate (AutoDL RANDOM-NAS)
    select_every: int = 1         # epochs between selections (assumed); 0 = at the end only

    def __post_init__(self) -> None:
        need_int("num_candidates", self.num_candidates, 1)
        need_int("valid_batch_size", self.valid_batch_size, 1)
        need_int("select_every", self.select_every, 0)


class RandomWS(SearchMethod):
    name = "random-ws"
    Options = RandomWSOptions
    arch_first = False  # no architecture step: immaterial

    def __init__(self, space, supernet, cfg, generator, device="cpu"):
        super().__init__(space, supernet, cfg, generator, device)
        self.sampler = self.own_generator("sampler", 31)
        self.recent: list[Batch] = []
        self.best = self.space.derive(self.space.sample_weights(self.sampler))
        self.best_acc: float | None = None

    @classmethod
    def profile_overrides(cls, space: str, profile: str) -> dict[str, Any]:
        out: dict[str, Any] = {"arch_first": cls.arch_first}
        if space == "nb201" and profile == "paper":
            out["epochs"] = 250
        if space == "darts" and profile == "paper":
            # Li & Talwalkar's CNN code (liamcli/randomNAS_release searchers/
            # random_weight_share.py, benchmarks/cnn/darts/darts_wrapper_discrete.py): 100
            # epochs, batch 64, C=16, 8 cells; 1000 sampled cells, each scored on 10
            # validation batches of 64 in eval mode. Selection every 10 epochs (assumed: the
            # source selects once, at the end; 1000 candidates every epoch would cost more
            # than the training).
            out["epochs"] = 100
            out["method_options"] = {"num_candidates": 1000, "valid_batch_size": 640,
                                     "select_every": 10}
        if profile == "smoke":
            out["method_options"] = {"num_candidates": 8, "valid_batch_size": 64}
        return out

    def _sample(self) -> Weights:
        return {k: v.to(self.device) for k, v in self.space.sample_weights(self.sampler).items()}

    def weight_step_weights(self, batch: Batch, ctx: StepContext) -> Weights:
        return self._sample()

    def arch_step(self, train_batch: Batch, valid_batch: Batch, ctx: StepContext) -> dict:
        self.recent.append((valid_batch[0].detach(), valid_batch[1].detach()))
        while sum(len(b[1]) for b in self.recent[1:]) >= self.opts.valid_batch_size:
            self.recent.pop(0)
        return {}

    @torch.no_grad()
    def select(self) -> dict:
        n = self.opts.valid_batch_size
        x = torch.cat([b[0] for b in self.recent])[-n:]
        y = torch.cat([b[1] for b in self.recent])[-n:]
        was_training = self.supernet.training
        self.supernet.eval()
        rows = []
        try:
            for _ in range(self.opts.num_candidates):
                w = self._sample()
                acc = (self.supernet(x, w).argmax(1) == y).float().mean().item()
                rows.append((self.space.derive({k: v.cpu() for k, v in w.items()}), acc))
        finally:
            self.supernet.train(was_training)
        self.best, self.best_acc = max(rows, key=lambda r: r[1])
        return {"selected_genotype": self.best, "selected_valid_acc": self.best_acc,
                "candidates": len(rows), "valid_images": len(y)}

    def epoch_end(self, epoch: int, ctx: StepContext) -> dict:
        every = self.opts.select_every
        if self.recent and (epoch == ctx.epochs or (every > 0 and epoch % every == 0)):
            return self.select()
        return {}

    def derive(self) -> str:
        return self.best

    def arch_record(self) -> dict:
        return {"selected": self.best, "selected_valid_acc": self.best_acc}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best": self.best, "best_acc": self.best_acc}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.best, self.best_acc = state["best"], state["best_acc"]
