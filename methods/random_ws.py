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
DARTS space (Li & Talwalkar's CNN code: liamcli/randomNAS_release master,
searchers/random_weight_share.py and benchmarks/cnn/darts/darts_wrapper_discrete.py, on their
DARTS fork liamcli/darts master, cnn/model_search.py; PyTorch 0.3.1 per its README; the
supplement's section A.4 describes the same): 100 epochs of batch 64 (argparse defaults, lines
171-172; B = int(epochs * 25000 / batch_size) steps, line 144), C=16, 8 cells.
- Weight step: one sampled cell pair per step, ops drawn among all 8 ops, `none` included
  (darts_wrapper_discrete.py `sample_arch`, line 266: np.random.choice(range(num_ops), 4) with
  num_ops = len(PRIMITIVES) = 8; supplement A.4: "include the zero operation for both search
  and evaluation"): option `sample_none`. The sample becomes 0/1 weights (lines 227-251) that
  the search network's `forward(discrete=True)` uses as they are (model_search.py lines
  103-116, fork commit dc2c5ac).
- Every op runs: the fork's master MixedOp is `sum(w * op(x) ...)` over all ops (line 22) and
  the cell sums every edge (line 54), so every op's BN running statistics move each step and
  every weight gets a (zero) gradient, hence SGD's weight decay and momentum act on all weights
  from the first step. This is the suite's reference network as it is (`supernet.skip_zero`
  false). Only the later `proxyless` branch of the fork (commit 2383602, May 2019, written for
  the larger proxyless search of darts_wrapper_discrete_proxyless.py) runs just the sampled ops
  (`if w > 0`, `if sum(weights[offset+j]) > 0`): `--set supernet.skip_zero=true`. Under
  PyTorch 0.3.1 `Optimizer.zero_grad` zeroed each existing gradient in place (it never set
  one to None), so there an op once sampled keeps a zero gradient and keeps being decayed and
  moved by momentum, while an op never sampled has no gradient and SGD skips it: option
  `grads_in_place` (zero_grad(set_to_none=False); the checkpoint records which weights hold a
  gradient, so a resumed run goes on alike). With every op running it changes nothing.
- Selection, once, after training (random_weight_share.py main, lines 154-156): rounds of 1000
  sampled cells (get_eval_arch, lines 81-115), max(1, int(B / 10000)) = 3 rounds for 100
  epochs of batch 64 (line 84): option `rounds`, at the last selection only. Each candidate is
  scored in eval mode on 10 batches of 64 (darts_wrapper_discrete.py `evaluate`, lines 180-219)
  from the valid queue, which is built on the TRAINING data object, so with the training
  transform (lines 64-65, 76-79; random crop and flip, cutout off at line 47): options
  `candidate_batches`, `valid_batch_size`, `augment_valid`. Its iterator carries on across
  candidates and rounds, restarting when exhausted (lines 198-203): one iterator per
  selection here. The 10 best of a round (stable sort by error, first sampled first among
  ties) are rescored on len(valid_queue) = ceil(25000 / 64) = 391 batches (`split='valid'`,
  lines 102-110; option `rescore_top`), the round's best rescored cell is its winner, and the
  top winner across the rounds is the answer (supplement A.4; the development branch sorts the
  winners so, while master's main() writes out the first round's winner, line 161). The
  record's diagnostics hold `candidates` (all rounds), `rounds` (each winner and its score),
  `rescored`, `valid_images` and `rescore_images`. `select_every` 0: no selection before the
  end (the per-epoch genotype is then the initial sample; --set method.select_every=k adds
  one-round selections during training).
- Candidates are drawn among the 7 non-`none` ops, which departs from the reference: a cell
  with `none` is not a genotype of this suite (spaces/darts/genotype.py refuses it), so a
  candidate holding `none` could not be recorded or retrained. The proxyless script draws its
  candidates so too (`sample_arch(test=True)`).
- Not reproduced: numpy's sampling stream and the data loader order; grad_clip: the argparse
  default 0.25 (line 173) is shared with the PTB benchmark and the README has every run's
  value set from the authors' spreadsheet, so the DARTS profile's 5 is kept (assumed).
`smoke`: the same procedure at 2 rounds of 8 candidates on 2 batches of 16, the top 2 rescored.
Space-agnostic: uses only sample_weights and derive (on the DARTS space a sample is a whole
DARTS cell pair: 2 inputs per node, as their `sample_arch`).

NB-1Shot1 (`paper` profile): nasbench-1shot1's random search with weight sharing
(automl/nasbench-1shot1 optimizers/random_search_with_weight_sharing/): its cluster scripts
run `--epochs=100` (cluster_scripts/search_space_1/baseline_script.sh line 28), batch 64 and
gradient clip 0.25 (random_weight_share.py lines 219-220, argparse defaults); after every
epoch (random_weight_share.py lines 91-94) 1000 sampled cells (line 108), each scored on 10
consecutive batches of 64 of the validation half (darts_wrapper_discrete.py `evaluate`, lines
205-214) drawn from a loader over the TRAINING transform (lines 75-90: the valid queue is
built on `train_data`, so it is augmented), in eval mode; the 5 best (lowest error) are
rescored on a pass over the whole validation half (random_weight_share.py lines 126-137,
`split='valid'`: len(valid_queue) batches) and the best of those is kept. Options:
`candidate_batches` (10), `augment_valid` (true), `rescore_top` (5). Differences left: the
reference's iterator carries on across candidates and selections (ours starts a new shuffled
pass at each selection), its final call after training adds max(1, B/10000) = 3 more rounds
(random_weight_share.py lines 99-103, 203; we keep the last epoch's one round). As ours, its
discrete forward passes the one-hot weights through the same mixed ops, which run every op
(optimizers/darts/model_search.py `_preprocess_op` lines 157-172 and MixedOp.forward), so
every op's BN running statistics move there too.

NB201 BN setting: AutoDL's RANDOM-NAS takes `--track_running_stats` (0 or 1; RANDOM-NAS.sh
passes BN as its third argument); the suite's profile has supernet.track_running_stats=false
(= BN 0, batch statistics everywhere). `--set supernet.track_running_stats=true` gives BN 1;
then only the sampled ops' running statistics move (the supernet's set_track_active_only, as
their search model runs only the sampled op of each edge), and the candidates are scored in
eval mode with those statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
import inspect
from typing import Any

import torch

from methods.base import Batch, SearchMethod, StepContext, need_int, need_number
from spaces.base import Weights


@dataclass
class RandomWSOptions:
    num_candidates: int = 100     # architectures scored per selection (AutoDL RANDOM-NAS)
    valid_batch_size: int = 512   # validation images per candidate (AutoDL RANDOM-NAS)
    select_every: int = 1         # epochs between selections (AutoDL RANDOM-NAS: every epoch); 0 = at the end only
    candidate_batches: int = 1    # batches per candidate, accuracy over all their images (1Shot1 reference: 10)
    augment_valid: bool = False   # score on augmented images (1Shot1 reference: its valid queue uses the training transform)
    rescore_top: int = 0          # the best k rescored on a whole pass of the architecture half (1Shot1 reference: 5); 0 = off
    rounds: int = 1               # rounds of num_candidates at the LAST selection, the best across rounds kept (DARTS reference: 3)
    sample_none: bool = False     # DARTS space: the weight step's samples draw ops among all 8, `none` included (DARTS reference)
    grads_in_place: bool = False  # weight optimizer's zero_grad(set_to_none=False), as the PyTorch 0.3.1 of the DARTS reference

    def __post_init__(self) -> None:
        need_int("num_candidates", self.num_candidates, 1)
        need_int("valid_batch_size", self.valid_batch_size, 1)
        need_int("select_every", self.select_every, 0)
        need_int("candidate_batches", self.candidate_batches, 1)
        need_int("rescore_top", self.rescore_top, 0)
        need_int("rounds", self.rounds, 1)
        for name in ("augment_valid", "sample_none", "grads_in_place"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"method.{name} must be true or false, got {getattr(self, name)!r}")


# Li & Talwalkar's CNN selection and weight-step settings (module docstring, "DARTS space")
DARTS_REFERENCE = {"num_candidates": 1000, "valid_batch_size": 64, "candidate_batches": 10,
                   "augment_valid": True, "rescore_top": 10, "rounds": 3, "select_every": 0,
                   "sample_none": True, "grads_in_place": True}


class RandomWS(SearchMethod):
    name = "random-ws"
    Options = RandomWSOptions
    arch_first = False  # no architecture step: immaterial

    def __init__(self, space, supernet, cfg, generator, device="cpu"):
        super().__init__(space, supernet, cfg, generator, device)
        self.check_space(self.opts, space)
        self.grads_to_none = not self.opts.grads_in_place   # methods/base.py weight_step
        self.sampler = self.own_generator("sampler", 31)
        self.best = self.space.derive(self.space.sample_weights(self.sampler))
        self.best_acc: float | None = None
        if hasattr(supernet, "set_track_active_only"):   # NB201 with BN 1: only sampled ops' stats
            supernet.set_track_active_only(True)

    @classmethod
    def check_space(cls, options, space) -> None:
        if options.sample_none and "include_none" not in inspect.signature(space.sample_weights).parameters:
            raise ValueError(f"method.sample_none=true needs a space whose samples can hold `none` "
                             f"(darts); {space.name} samples its own way: set it false")

    @classmethod
    def profile_overrides(cls, space: str, profile: str) -> dict[str, Any]:
        out: dict[str, Any] = {"arch_first": cls.arch_first}
        if space == "nb201" and profile == "paper":
            out["epochs"] = 250
        if space == "darts" and profile == "paper":
            # Li & Talwalkar's CNN code (module docstring, "DARTS space"): 100 epochs, batch 64,
            # C=16, 8 cells; weight-step samples over all 8 ops; one selection after training:
            # 3 rounds of 1000 cells, each on 10 augmented batches of 64 in eval mode, the 10
            # best of a round rescored on a whole pass of the validation half
            out["epochs"] = 100
            out["method_options"] = dict(DARTS_REFERENCE)
        elif space == "darts" and profile == "smoke":
            # the same procedure, small: 2 rounds of 8 cells on 2 batches of 16, top 2 rescored
            out["method_options"] = {**DARTS_REFERENCE, "num_candidates": 8, "valid_batch_size": 16,
                                     "candidate_batches": 2, "rescore_top": 2, "rounds": 2}
        elif space.startswith("nb1shot1") and profile == "paper":
            # nasbench-1shot1 optimizers/random_search_with_weight_sharing (module docstring)
            out.update(epochs=100, batch_size=64, grad_clip=0.25)
            out["method_options"] = {"num_candidates": 1000, "valid_batch_size": 64,
                                     "candidate_batches": 10, "augment_valid": True,
                                     "rescore_top": 5, "select_every": 1}
        elif space.startswith("nb1shot1") and profile == "smoke":
            # the same protocol, small: 8 candidates on 2 batches of 16, the best 2 rescored
            out.update(grad_clip=0.25)
            out["method_options"] = {"num_candidates": 8, "valid_batch_size": 16,
                                     "candidate_batches": 2, "augment_valid": True,
                                     "rescore_top": 2}
        elif profile == "smoke":
            out["method_options"] = {"num_candidates": 8, "valid_batch_size": 64}
        return out

    def _sample(self, train: bool = False) -> Weights:
        """A uniform sample; train=True: the weight step's (with `none` where sample_none)."""
        if train and self.opts.sample_none:
            w = self.space.sample_weights(self.sampler, include_none=True)
        else:
            w = self.space.sample_weights(self.sampler)
        return {k: v.to(self.device) for k, v in w.items()}

    def weight_step_weights(self, batch: Batch, ctx: StepContext) -> Weights:
        return self._sample(train=True)

    def arch_step(self, train_batch: Batch, valid_batch: Batch, ctx: StepContext) -> dict:
        return {}  # no architecture step

    @torch.no_grad()
    def select(self, ctx: StepContext, rounds: int = 1) -> dict:
        """`rounds` rounds of num_candidates candidates on one iterator of batches (the
        reference's valid_iter carries on across rounds); each round's winner is its best
        rescored candidate (or its best, without rescoring); the best winner is kept (first of
        ties)."""
        if ctx.eval_batches is None:
            raise RuntimeError("random-ws scores its candidates on ctx.eval_batches, which this "
                               "caller does not provide")
        o = self.opts
        batches = (ctx.eval_batches(o.valid_batch_size, augment=True) if o.augment_valid
                   else ctx.eval_batches(o.valid_batch_size))
        was_training = self.supernet.training
        self.supernet.eval()
        winners, candidates, images, extra = [], 0, 0, {}
        try:
            for _ in range(rounds):
                out = self._round(batches, ctx)
                winners.append((out.pop("selected_genotype"), out.pop("selected_valid_acc")))
                candidates += out.pop("candidates")
                images += out.pop("valid_images")
                for k, v in out.items():   # rescored lists and image counts add up over rounds
                    extra[k] = extra[k] + v if k in ("rescored", "rescore_images") and k in extra else v
        finally:
            self.supernet.train(was_training)
        self.best, self.best_acc = max(winners, key=lambda r: r[1])   # first of ties
        if rounds > 1:
            extra["rounds"] = [{"genotype": g, "valid_acc": a} for g, a in winners]
        return {"selected_genotype": self.best, "selected_valid_acc": self.best_acc,
                "candidates": candidates, "valid_images": images,  # summed over the candidates
                **extra}

    def _round(self, batches, ctx: StepContext) -> dict:
        o = self.opts
        rows, images = [], 0

        def score(w: Weights, n_batches: int) -> tuple[float, int]:
            if n_batches == 1:   # one batch: its accuracy, computed as it always was
                x, y = next(batches)
                return (self.supernet(x, w).argmax(1) == y).float().mean().item(), len(y)
            right = seen = 0
            for _ in range(n_batches):
                x, y = next(batches)
                right += (self.supernet(x, w).argmax(1) == y).sum().item()
                seen += len(y)
            return right / seen, seen
        for _ in range(o.num_candidates):
            w = self._sample()
            acc, n = score(w, o.candidate_batches)
            rows.append((self.space.derive({k: v.cpu() for k, v in w.items()}), acc, w))
            images += n
        extra: dict[str, Any] = {}
        if o.candidate_batches > 1:
            extra["batches_per_candidate"] = o.candidate_batches
        if o.augment_valid:
            extra["augmented"] = True
        if o.rescore_top:
            # the k best (stable sort: first sampled first among ties), each on a whole
            # pass's worth of batches of the architecture half
            top = sorted(rows, key=lambda r: -r[1])[:o.rescore_top]
            per_pass = -(-ctx.valid_size // o.valid_batch_size)
            full, rescore_images = [], 0
            for g, first_acc, w in top:
                acc, n = score(w, per_pass)
                full.append((g, acc, first_acc))
                rescore_images += n
            best, best_acc, _ = max(full, key=lambda r: r[1])   # first of ties
            extra.update(rescored=[{"genotype": g_, "valid_acc": a, "sample_acc": a0}
                                   for g_, a, a0 in full],
                         rescore_images=rescore_images)
        else:
            best, best_acc = max(rows, key=lambda r: r[1])[:2]  # first of ties
        return {"selected_genotype": best, "selected_valid_acc": best_acc,
                "candidates": len(rows), "valid_images": images, **extra}

    def epoch_end(self, epoch: int, ctx: StepContext) -> dict:
        every = self.opts.select_every
        if epoch == ctx.epochs:   # the last selection: all its rounds
            return self.select(ctx, self.opts.rounds)
        if every > 0 and epoch % every == 0:
            return self.select(ctx)
        return {}

    def derive(self) -> str:
        return self.best

    def arch_record(self) -> dict:
        return {"selected": self.best, "selected_valid_acc": self.best_acc}

    def state_dict(self) -> dict:
        out = {**super().state_dict(), "best": self.best, "best_acc": self.best_acc}
        if self.opts.grads_in_place:   # which weights hold a (zeroed) gradient, so a resumed
            # run decays and moves the same ones (a checkpoint does not store gradients)
            out["has_grad"] = [p.grad is not None for p in self.supernet.parameters()]
        return out

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.best, self.best_acc = state["best"], state["best_acc"]
        if self.opts.grads_in_place and "has_grad" in state:
            for p, had in zip(self.supernet.parameters(), state["has_grad"]):
                if had and p.grad is None:
                    p.grad = torch.zeros_like(p)
