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
