import pytest
import torch

from benchmark.harness.config import resolve_config
from methods.random_ws import RandomWS
from spaces.nb201 import NB201Space
from tests.e2e import check_layout, interrupt_at_epoch, run_tiny


def test_profiles():
    cfg = resolve_config("nb201", "random-ws", 0, "paper")
    assert cfg.epochs == 250 and cfg.method_options == {}
    m = RandomWS.Options()
    assert (m.num_candidates, m.valid_batch_size) == (100, 512)
    assert resolve_config("nb201", "random-ws", 0, "smoke").epochs == 2


def test_weight_step_uses_one_hot_samples():
    space = NB201Space()
    cfg = resolve_config("nb201", "random-ws", 0, "smoke")
    m = RandomWS(space, space.supernet(C=4, N=1), cfg, torch.Generator().manual_seed(0))
    ws = [m.weight_step_weights(None, None)["alpha"] for _ in range(20)]
    for w in ws:
        assert torch.equal(w.sum(-1), torch.ones(6)) and set(w.unique().tolist()) <= {0.0, 1.0}
    assert len({tuple(w.argmax(-1).tolist()) for w in ws}) > 10


def test_random_ws_end_to_end_selects_the_best_candidate(tmp_path):
    recs = run_tiny("random-ws", tmp_path)
    check_layout(recs)
    d = recs[-1]["diagnostics"]
    assert recs[-1]["genotype"] == d["selected_genotype"] and d["candidates"] == 8
    assert 0.0 <= d["selected_valid_acc"] <= 1.0


class _ScoredSupernet(torch.nn.Module):
    """A stand-in supernet whose accuracy on a batch is a known function of the sampled cell:
    correct = (cell code mod (B+1)) of the B images, code = sum_e op_e * 5**e."""

    def __init__(self):
        super().__init__()
        self.seen = []   # (cell code, x) per forward

    @staticmethod
    def code(w):
        return int(sum(int(op) * 5 ** e for e, op in enumerate(w["alpha"].argmax(-1).tolist())))

    def forward(self, x, w):
        code, b = self.code(w), len(x)
        self.seen.append((code, x.clone()))
        y = self.labels
        right = torch.nn.functional.one_hot(y, 10).float()
        wrong = torch.nn.functional.one_hot((y + 1) % 10, 10).float()
        k = code % (b + 1)
        return torch.cat([right[:k], wrong[k:]])


def _ctx(batches):
    from methods.base import StepContext
    return StepContext(None, None, 1, 1, 5.0, 0, 0, batches)


def test_selection_picks_the_best_candidate_on_a_common_batch():
    space = NB201Space()
    cfg = resolve_config("nb201", "random-ws", 0, "smoke", sets=["method.num_candidates=30"])
    net = _ScoredSupernet()
    m = RandomWS(space, net, cfg, torch.Generator().manual_seed(0))
    x, y = torch.randn(64, 3, 4, 4), torch.arange(64) % 10
    net.labels = y

    def common(n):
        while True:
            yield x, y
    d = m.epoch_end(1, _ctx(common))
    codes = [c for c, _ in net.seen]
    accs = [(c % 65) / 64 for c in codes]
    best = codes[accs.index(max(accs))]            # the first of the best
    assert len(codes) == 30 and len(set(accs)) > 10 and accs[0] != max(accs)
    from spaces.nb201 import parse_arch
    from spaces.nb201.ops import OPS
    ops = parse_arch(d["selected_genotype"])
    assert sum(OPS.index(o) * 5 ** e for e, o in enumerate(ops)) == best
    assert d["selected_valid_acc"] == max(accs) and m.derive() == d["selected_genotype"]


def test_candidates_get_distinct_unaugmented_batches_of_the_architecture_half():
    """Each candidate its own batch: consecutive batches of shuffled passes over the half,
    with the test transform (pixels exactly the normalised originals: no crop, no flip)."""
    import numpy as np
    from benchmark.harness.data import MEAN, STD, BatchStream, endless
    g = np.random.default_rng(0)
    raw = g.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(40) % 10
    train_like = BatchStream(raw, labels, 8, True, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    batches = lambda n: endless(train_like.with_options(n, False, gen))  # noqa: E731  (as the loop)
    space = NB201Space()
    cfg = resolve_config("nb201", "random-ws", 0, "smoke",
                         sets=["method.num_candidates=5", "method.valid_batch_size=16"])
    net = _ScoredSupernet()
    net.labels = None
    m = RandomWS(space, net, cfg, torch.Generator().manual_seed(0))
    originals = ((torch.from_numpy(raw).permute(0, 3, 1, 2).float() / 255
                  - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))

    def index_of(img):
        hits = [i for i in range(40) if torch.equal(originals[i], img)]
        assert len(hits) == 1, "an augmented (or foreign) image"
        return hits[0]
    real_forward = net.forward

    def forward(x, w):   # the labels of this batch are irrelevant here
        net.labels = torch.zeros(len(x), dtype=torch.long)
        return real_forward(x, w)
    net.forward = forward
    m.epoch_end(1, _ctx(batches))
    idx = [[index_of(img) for img in x] for _, x in net.seen]
    assert [len(i) for i in idx] == [16, 16, 8, 16, 16]            # passes of 40: 16+16+8
    assert sorted(sum(idx[:3], [])) == list(range(40))             # one pass: each image once
    assert len({tuple(i) for i in idx}) == 5                       # distinct batches
    # the next selection starts a new pass from the run's generator: other batches
    net.seen.clear()
    m.epoch_end(1, _ctx(batches))
    assert [index_of(img) for img in net.seen[0][1]] != idx[0]


@pytest.mark.slow
def test_resume_draws_the_same_candidate_batches(tmp_path, cifar, benchmarks, monkeypatch):
    """The candidates' batch generator is checkpointed: with batches smaller than the half
    (so which images a candidate sees depends on the generator), an interrupted and resumed
    run selects exactly as an uninterrupted one."""
    import pytest
    from benchmark.harness.records import read_jsonl, strip_timing
    from benchmark.harness.worker import execute
    from tests.harness.test_determinism import _job, _run_dir
    args = ("--methods", "random-ws", "--spaces", "nb201", "--seeds", "3", "--epochs", "2",
            "--set", "method.valid_batch_size=8", "--set", "method.num_candidates=12")
    ref = _job(tmp_path, "ref", cifar, benchmarks, *args)
    assert execute(ref).status == "finished"
    cut = _job(tmp_path, "cut", cifar, benchmarks, *args)
    undo = interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        execute(cut)
    undo()
    assert execute(cut).status == "finished"
    ra, rb = read_jsonl(f"{_run_dir(ref)}/epochs.jsonl"), read_jsonl(f"{_run_dir(cut)}/epochs.jsonl")
    assert ra[2]["diagnostics"]["valid_images"] == 12 * 8
    assert [strip_timing(r) for r in ra] == [strip_timing(r) for r in rb]


def test_the_loop_hands_candidates_test_transform_batches_of_the_architecture_half(tmp_path, monkeypatch):
    """Through the real loop: ctx.eval_batches yields the architecture half's images exactly as
    normalised originals (no crop, no flip), with their labels."""
    from benchmark.harness.data import MEAN, STD, find_split_file, make_split
    from benchmark.harness.worker import cached_data
    from tests.e2e import BENCH, DATA
    got = []
    real = RandomWS.select

    def spy(self, ctx, *rounds):
        got.append(next(ctx.eval_batches(16)))
        return real(self, ctx, *rounds)
    monkeypatch.setattr(RandomWS, "select", spy)
    run_tiny("random-ws", tmp_path)
    data = cached_data(str(DATA))
    _, valid, _ = make_split("official", len(data.y_train), 0, find_split_file(BENCH))
    raw = torch.from_numpy(data.x_train[valid[:32]]).permute(0, 3, 1, 2).float() / 255
    originals = (raw - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    labels = torch.from_numpy(data.y_train[valid[:32]])
    (x, y), = got
    assert len(y) == 16
    for img, label in zip(x, y):
        hits = [i for i in range(32) if torch.allclose(originals[i], img, atol=1e-6)]
        assert len(hits) == 1 and labels[hits[0]] == label
