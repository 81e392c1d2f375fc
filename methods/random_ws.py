"""Random search with weight sharing (RSPS; Li & Talwalkar, UAI 2019), the naive baseline.

Weight step: the supernet trained with ONE uniformly sampled architecture per step
(space.sample_weights: one-hot rows). No architecture step (the architecture half serves only
the selection). Selection, every `select_every` epochs and at the last: `num_candidates`
uniformly sampled architectures, each scored by the supernet's accuracy (eval mode) on its
OWN batch of `valid_batch_size` images of the architecture half with the test transform (no
augmentation): consecutive batches of one shuffled pass, a new pass when one runs out, a new
pass at each selection (ctx.eval_batches, seeded by the run and checkpointed, so a resumed
run draws the same batches). The best is the epoch's genotype (ties: first sampled).
This is AutoDL-Projects exps/NAS-Bench-201-algos/RANDOM-NAS.py, `search_find_best`: one
`iter(valid_loader)` per call, `next()` per candidate (restarted when exhausted), the loader
over the validation split with the test transform and batch `test_batch_size` 512
(configs/nas-benchmark/algos/RANDOM.config), argmax of the top-1 accuracies. Because each
candidate sees other images, the scores carry batch-to-batch noise; that is the source's.

NB201 settings (RANDOM-NAS.py and RANDOM.config): 250 epochs, 100 candidates (`--select_num
100`, scripts-search/NAS-Bench-201-algos/RANDOM-NAS.sh), batches of 512, a selection after
every epoch and at the end: the `paper` profile applies them. Assumed: before the first
selection (epoch 0) the genotype is one uniform sample.
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
    select_every: int = 1         # epochs between selections (AutoDL RANDOM-NAS: every epoch); 0 = at the end only

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
        return {}  # no architecture step

    @torch.no_grad()
    def select(self, ctx: StepContext) -> dict:
        if ctx.eval_batches is None:
            raise RuntimeError("random-ws scores its candidates on ctx.eval_batches, which this "
                               "caller does not provide")
        batches = ctx.eval_batches(self.opts.valid_batch_size)
        was_training = self.supernet.training
        self.supernet.eval()
        rows, images = [], 0
        try:
            for _ in range(self.opts.num_candidates):
                w = self._sample()
                x, y = next(batches)
                acc = (self.supernet(x, w).argmax(1) == y).float().mean().item()
                rows.append((self.space.derive({k: v.cpu() for k, v in w.items()}), acc))
                images += len(y)
        finally:
            self.supernet.train(was_training)
        self.best, self.best_acc = max(rows, key=lambda r: r[1])  # max keeps the first of ties
        return {"selected_genotype": self.best, "selected_valid_acc": self.best_acc,
                "candidates": len(rows), "valid_images": images}  # summed over the candidates

    def epoch_end(self, epoch: int, ctx: StepContext) -> dict:
        every = self.opts.select_every
        if epoch == ctx.epochs or (every > 0 and epoch % every == 0):
            return self.select(ctx)
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
