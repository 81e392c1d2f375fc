"""random-ws as its references run it: nasbench-1shot1's random search with weight sharing
on the 1Shot1 spaces, AutoDL RANDOM-NAS' BN setting on NB201."""
import pytest
import torch

from benchmark.harness.config import resolve_config
from methods.base import StepContext
from methods.random_ws import RandomWS
from tests.e2e import run_tiny


def test_nb1shot1_paper_profile_is_the_reference_protocol():
    """nasbench-1shot1 random_weight_share.py (100 epochs in its cluster scripts, batch 64,
    clip 0.25), 1000 candidates on 10 augmented batches of 64, top 5 rescored."""
    for s in ("nb1shot1-s1", "nb1shot1-s2", "nb1shot1-s3"):
        cfg = resolve_config(s, "random-ws", 0, "paper")
        assert (cfg.epochs, cfg.batch_size, cfg.grad_clip) == (100, 64, 0.25)
        o = RandomWS.Options(**cfg.method_options)
        assert (o.num_candidates, o.valid_batch_size, o.candidate_batches, o.augment_valid,
                o.rescore_top, o.select_every) == (1000, 64, 10, True, 5, 1)
    smoke = RandomWS.Options(**resolve_config("nb1shot1-s1", "random-ws", 0, "smoke").method_options)
    assert (smoke.num_candidates, smoke.candidate_batches, smoke.rescore_top, smoke.augment_valid) == (8, 2, 2, True)
    nb201 = resolve_config("nb201", "random-ws", 0, "paper")   # NB201 unchanged
    assert nb201.epochs == 250 and RandomWS.Options(**nb201.method_options).rescore_top == 0


class _Net(torch.nn.Module):
    """Accuracy on a batch = a known function of (cell, batch): the candidate's first
    (sample) score and its rescoring differ, so the rescoring decides."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, w):
        code = int(sum(int(o) * 5 ** e for e, o in enumerate(w["alpha"].argmax(-1).tolist())))
        self.calls.append((code, int(x[0, 0, 0, 0])))
        b = len(x)
        # a batch tagged t >= 100 belongs to the rescoring pass: there the ranking is reversed
        k = (code % (b + 1)) if x[0, 0, 0, 0] < 100 else b - (code % (b + 1))
        y = torch.zeros(b, dtype=torch.long)
        return torch.cat([torch.nn.functional.one_hot(y[:k], 10).float(),
                          torch.nn.functional.one_hot(y[k:] + 1, 10).float()])


def test_top_k_are_rescored_on_a_whole_pass_and_the_best_rescored_kept():
    from spaces.nb201 import NB201Space
    space = NB201Space()
    cfg = resolve_config("nb201", "random-ws", 0, "smoke", sets=[
        "method.num_candidates=20", "method.valid_batch_size=8", "method.candidate_batches=3",
        "method.rescore_top=4", "method.augment_valid=true"])
    net = _Net()
    m = RandomWS(space, net, cfg, torch.Generator().manual_seed(0))
    asked = []

    def eval_batches(n, augment=False):
        asked.append((n, augment))
        i = 0
        while True:   # the first 60 batches (20 candidates x 3) are sampling, then rescoring
            tag = 0.0 if i < 60 else 100.0
            i += 1
            yield torch.full((n, 3, 2, 2), tag), torch.zeros(n, dtype=torch.long)
    ctx = StepContext(None, None, 1, 1, 5.0, 0, 20, eval_batches)   # 20 images: 3 batches of 8
    d = m.epoch_end(1, ctx)
    assert asked == [(8, True)]
    first = [c for c, t in net.calls if t < 100]
    assert len(first) == 60 and first[0::3] == first[1::3] == first[2::3]   # 3 batches each
    codes = first[0::3]
    sample_acc = [(c % 9) / 8 for c in codes]
    order = sorted(range(20), key=lambda i: -sample_acc[i])[:4]
    rescored = [c for c, t in net.calls if t >= 100]
    assert rescored == [c for i in order for c in [codes[i]] * 3]           # a pass: 3 batches each
    full_acc = {codes[i]: (8 - codes[i] % 9) / 8 for i in order}
    best = max(order, key=lambda i: full_acc[codes[i]])
    assert d["selected_valid_acc"] == full_acc[codes[best]]
    assert [r["sample_acc"] for r in d["rescored"]] == [sample_acc[i] for i in order]
    assert d["rescore_images"] == 4 * 24 and d["valid_images"] == 20 * 24
    assert d["batches_per_candidate"] == 3 and d["augmented"] is True
    # the pick is not the sampling stage's best: the rescoring decided
    assert codes[best] != codes[order[0]] or len(set(full_acc.values())) == 1


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_nb201_tracked_statistics_move_only_for_sampled_ops(impl):
    """BN 1 (supernet.track_running_stats=true): a training step on a sampled one-hot cell
    moves the running statistics of the sampled ops only (AutoDL RANDOM-NAS runs only the
    sampled op); without set_track_active_only every op's move (the mixed supernet)."""
    from spaces.nb201 import NB201Space
    from spaces.nb201.fast import FastSupernet
    space = NB201Space()
    torch.manual_seed(0)
    ref = space.supernet(C=2, N=1, impl="reference", track_running_stats=True)
    net = space.supernet(C=2, N=1, impl=impl, track_running_stats=True)
    if isinstance(net, FastSupernet):
        net.load_reference(ref)
    w = torch.zeros(6, 5)
    w[torch.arange(6), torch.tensor([2, 3, 1, 4, 2, 0])] = 1.0   # conv1x1, conv3x3, skip, pool, conv1x1, none
    x = torch.randn(4, 3, 32, 32)
    cfg = resolve_config("nb201", "random-ws", 0, "smoke")
    RandomWS(space, net, cfg, torch.Generator().manual_seed(0))   # sets track_active_only
    net.train()
    net(x, {"alpha": w})
    if isinstance(net, FastSupernet):
        net.net.cells[0].copy_to(ref.net.cells[0])
        cell = ref.net.cells[0]
    else:
        cell = net.net.cells[0]
    for k in range(6):
        for o in (2, 3):   # the conv ops (the only ones with BN)
            moved = not torch.equal(cell.edges[k][o][2].running_mean, torch.zeros(2))
            assert moved == (w[k, o] == 1), (k, o)
    # the plain mixed supernet (no random-ws): every op's statistics move
    torch.manual_seed(0)
    plain = space.supernet(C=2, N=1, impl="reference", track_running_stats=True)
    plain.train()
    plain(x, {"alpha": w})
    assert all(not torch.equal(plain.net.cells[0].edges[k][2][2].running_mean, torch.zeros(2)) for k in range(6))


@pytest.mark.slow
def test_random_ws_on_nb1shot1_end_to_end_records_the_counts(tmp_path):
    recs = run_tiny("random-ws", tmp_path, space="nb1shot1-s1")
    d = recs[-1]["diagnostics"]
    assert d["candidates"] == 8 and d["batches_per_candidate"] == 2 and d["augmented"] is True
    assert d["valid_images"] == 8 * 2 * 16
    assert len(d["rescored"]) == 2 and d["rescore_images"] == 2 * 32   # a pass over 32 images
    assert recs[-1]["genotype"] == d["selected_genotype"]
    assert d["selected_genotype"] in {r["genotype"] for r in d["rescored"]}


# ----- the DARTS space: Li & Talwalkar's CNN code (methods/random_ws.py, "DARTS space") -------
def test_darts_profiles_are_li_talwalkar_cnn_procedure():
    """random_weight_share.py + darts_wrapper_discrete.py: 100 epochs; one selection after
    training: max(1, int(B / 10000)) = 3 rounds (B = int(100 * 25000 / 64)) of 1000 cells,
    each on 10 batches of 64 from the training-transform queue, the 10 best rescored on
    len(valid_queue) batches; weight-step samples over all 8 ops; in-place zero_grad."""
    cfg = resolve_config("darts", "random-ws", 0, "paper")
    assert (cfg.epochs, cfg.batch_size) == (100, 64)
    o = RandomWS.Options(**cfg.method_options)
    assert max(1, int(int(100 * 25000 / 64) / 10000)) == o.rounds == 3
    assert (o.num_candidates, o.valid_batch_size, o.candidate_batches, o.augment_valid, o.rescore_top,
            o.select_every, o.sample_none, o.grads_in_place) == (1000, 64, 10, True, 10, 0, True, True)
    smoke = RandomWS.Options(**resolve_config("darts", "random-ws", 0, "smoke").method_options)
    assert (smoke.num_candidates, smoke.candidate_batches, smoke.rescore_top, smoke.rounds,
            smoke.select_every, smoke.sample_none, smoke.grads_in_place) == (8, 2, 2, 2, 0, True, True)


def _darts_method(sets=(), C=4, skip_zero=True):
    from spaces.darts import DartsSpace
    space = DartsSpace()
    cfg = resolve_config("darts", "random-ws", 0, "smoke", sets=list(sets))
    torch.manual_seed(0)
    net = space.supernet(C=C, layers=3, skip_zero=skip_zero)
    return space, net, RandomWS(space, net, cfg, torch.Generator().manual_seed(0))


def test_darts_weight_step_samples_draw_none_and_candidates_do_not():
    """sample_none: the weight step's cells hold `none` (darts_wrapper_discrete.py line 266,
    all 8 ops); candidates never do (a genotype of this suite has no `none`)."""
    from spaces.darts.ops import NONE
    _, _, m = _darts_method()
    train = [m.weight_step_weights(None, None) for _ in range(30)]
    assert sum(w[c][:, NONE].sum().item() for w in train for c in ("normal", "reduce")) > 0
    assert all(m._sample()[c][:, NONE].sum() == 0 for _ in range(30) for c in ("normal", "reduce"))
    _, _, off = _darts_method(["method.sample_none=false"])
    assert all(off.weight_step_weights(None, None)[c][:, NONE].sum() == 0
               for _ in range(30) for c in ("normal", "reduce"))


def test_sample_none_is_refused_where_samples_cannot_hold_none():
    """At planning (resolve_config validates), before anything is created."""
    from spaces.nb201 import NB201Space
    with pytest.raises(ValueError, match="method.sample_none=true needs a space"):
        resolve_config("nb201", "random-ws", 0, "smoke", sets=["method.sample_none=true"])
    with pytest.raises(ValueError, match="method.sample_none"):
        RandomWS.check_space(RandomWS.Options(sample_none=True), NB201Space())
    resolve_config("darts", "random-ws", 0, "smoke", sets=["method.sample_none=true"])


def _one_hot(entries):
    from spaces.darts.ops import OPS
    w = {c: torch.zeros(14, len(OPS)) for c in ("normal", "reduce")}
    for cell, e, o in entries:
        w[cell][e, o] = 1.0
    return w


@pytest.mark.parametrize("in_place", [True, False])
def test_an_op_sampled_once_keeps_decaying_and_one_never_sampled_does_not_move(in_place):
    """PyTorch 0.3.1's zero_grad zeroed gradients in place: with only the sampled ops run
    (skip_zero), an op sampled once keeps a zero gradient, so SGD's weight decay and momentum
    keep moving it in later steps that do not sample it; an op never sampled has no gradient
    and SGD skips it. grads_in_place=false (set_to_none, today's PyTorch) stops the first op
    as soon as it is not sampled."""
    from spaces.darts.ops import OPS
    sep, dil = OPS.index("sep_conv_3x3"), OPS.index("dil_conv_3x3")
    _, net, m = _darts_method([f"method.grads_in_place={'true' if in_place else 'false'}"])
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    ctx = StepContext(net, opt, 1, 1, 5.0, 0, 0)
    # edge 0 of the normal cells: sep_conv_3x3 in step 1 only; dil_conv_3x3 never
    first = _one_hot([("normal", 0, sep), ("normal", 1, sep), ("reduce", 0, sep), ("reduce", 1, sep)] +
                     [(c, e, OPS.index("skip_connect")) for c in ("normal", "reduce") for e in (2, 3, 5, 6, 9, 10)])
    later = _one_hot([("normal", 1, sep), ("normal", 2, OPS.index("skip_connect")),
                      ("reduce", 0, sep), ("reduce", 1, sep)] +
                     [(c, e, OPS.index("skip_connect")) for c in ("normal", "reduce") for e in (3, 5, 6, 9, 10)] +
                     [("reduce", 2, OPS.index("skip_connect")), ("normal", 0, OPS.index("max_pool_3x3"))])
    plan = iter([first, later, later])
    m.weight_step_weights = lambda batch, ctx: next(plan)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    sampled = list(net.cells[0].edges[0].ops[sep].parameters())
    never = list(net.cells[0].edges[0].ops[dil].parameters())
    never0 = [p.detach().clone() for p in never]
    m.weight_step((x, y), ctx)
    after1 = [p.detach().clone() for p in sampled]
    m.weight_step((x, y), ctx)
    m.weight_step((x, y), ctx)
    moved = any(not torch.equal(a, p) for a, p in zip(after1, sampled))
    assert moved == in_place
    assert all(torch.equal(a, p) for a, p in zip(never0, never))
    assert all(p.grad is None for p in never)


def test_in_place_gradients_survive_a_checkpoint():
    """A checkpoint does not hold gradients: the method state says which weights had one, so
    a resumed run goes on decaying the same weights."""
    from spaces.darts.ops import OPS
    _, net, m = _darts_method()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    m.weight_step_weights = lambda batch, ctx: _one_hot(
        [(c, e, OPS.index("sep_conv_3x3")) for c in ("normal", "reduce") for e in (0, 1, 2, 3, 5, 6, 9, 10)])
    m.weight_step((torch.randn(2, 3, 8, 8), torch.randint(0, 10, (2,))), StepContext(net, opt, 1, 1, 5.0, 0, 0))
    had = [p.grad is not None for p in net.parameters()]
    assert any(had) and not all(had)
    state = m.state_dict()
    _, net2, m2 = _darts_method()
    net2.load_state_dict(net.state_dict())
    m2.load_state_dict(state)
    assert [p.grad is not None for p in net2.parameters()] == had
    assert all(p.grad.abs().max() == 0 for p in net2.parameters() if p.grad is not None)


def test_rounds_keep_the_best_round_winner_and_count_every_candidate():
    """The reference's get_eval_arch: rounds of 1000 on one carrying-on iterator, the top 10
    of each round rescored, the round's best kept; then the top architecture across all sets
    (supplement A.4; random_weight_share.py lines 88-115). The records say how many."""
    from spaces.nb201 import NB201Space
    cfg = resolve_config("nb201", "random-ws", 0, "smoke", sets=[
        "method.num_candidates=5", "method.valid_batch_size=8", "method.rescore_top=2",
        "method.rounds=3", "method.select_every=0"])
    net = _Net()
    m = RandomWS(NB201Space(), net, cfg, torch.Generator().manual_seed(0))
    asked = []

    def eval_batches(n, augment=False):
        asked.append(n)
        while True:
            yield torch.full((n, 3, 2, 2), 100.0), torch.zeros(n, dtype=torch.long)
    ctx = StepContext(None, None, 1, 1, 5.0, 0, 16, eval_batches)   # a pass: 2 batches of 8
    assert m.epoch_end(1, StepContext(None, None, 1, 2, 5.0, 0, 16, eval_batches)) == {}   # not the last
    d = m.epoch_end(1, ctx)
    assert asked == [8]                                   # one iterator across the rounds
    assert d["candidates"] == 15 and len(d["rounds"]) == 3 and len(d["rescored"]) == 6
    assert d["valid_images"] == 15 * 8 and d["rescore_images"] == 6 * 16
    for k, r in enumerate(d["rounds"]):                   # each round's winner: its best rescored
        mine = d["rescored"][2 * k:2 * k + 2]
        assert r["valid_acc"] == max(x["valid_acc"] for x in mine)
    assert d["selected_valid_acc"] == max(r["valid_acc"] for r in d["rounds"])
    assert d["selected_genotype"] == next(r["genotype"] for r in d["rounds"]
                                          if r["valid_acc"] == d["selected_valid_acc"])
    # a supernet that gets better with every call: the last round's winner is the best, and
    # is kept (not the first round's, as the master branch's main() writes out, line 161)
    class Improving(torch.nn.Module):
        calls = 0

        def forward(self, x, w):
            self.calls += 1
            k = min(len(x), len(x) * self.calls // 30)   # 9 calls a round: 2, 4, 7 of 8 right
            y = torch.zeros(len(x), dtype=torch.long)
            return torch.cat([torch.nn.functional.one_hot(y[:k], 10).float(),
                              torch.nn.functional.one_hot(y[k:] + 1, 10).float()])
    m3 = RandomWS(NB201Space(), Improving(), cfg, torch.Generator().manual_seed(0))
    d3 = m3.epoch_end(1, ctx)
    accs = [r["valid_acc"] for r in d3["rounds"]]
    assert accs[0] < accs[1] < accs[2] and d3["selected_genotype"] == d3["rounds"][2]["genotype"]
    # rounds apply to the last selection only: an earlier one is a single round
    m2 = RandomWS(NB201Space(), _Net(), resolve_config("nb201", "random-ws", 0, "smoke", sets=[
        "method.num_candidates=5", "method.valid_batch_size=8", "method.rounds=3"]), torch.Generator())
    assert m2.epoch_end(1, StepContext(None, None, 1, 2, 5.0, 0, 16, eval_batches))["candidates"] == 5


@pytest.mark.slow
def test_random_ws_on_darts_end_to_end_records_the_candidates(tmp_path):
    recs = run_tiny("random-ws", tmp_path, ["train_subset=16", "batch_size=8"], epochs=1, space="darts")
    d = recs[-1]["diagnostics"]
    assert d["candidates"] == 16 and len(d["rounds"]) == 2 and d["batches_per_candidate"] == 2
    assert len(d["rescored"]) == 4 and d["augmented"] is True
    assert recs[-1]["genotype"] == d["selected_genotype"]
    assert d["selected_genotype"] in {r["genotype"] for r in d["rounds"]}
