"""BaLeNAS-TF's proxies as their references run them: NASWOT on an unaugmented batch, NB101
networks (1Shot1) with a 16-channel stem and He init (BayesWatch/nas-without-training)."""
import math

import pytest
import torch

from benchmark.harness.config import resolve_config
from methods.balenas_tf import BalenasTF
from methods.base import StepContext
from tests.e2e import run_tiny


def test_selection_scores_an_unaugmented_batch_from_eval_batches(monkeypatch):
    from spaces.nb201 import NB201Space
    space = NB201Space()
    cfg = resolve_config("nb201", "balenas-tf", 0, "smoke", sets=["method.num_candidates=3",
                                                                 "method.proxy_batch_size=6"])
    m = BalenasTF(space, space.supernet(C=2, N=1), cfg, torch.Generator().manual_seed(0))
    asked, seen = [], []
    batch = (torch.randn(6, 3, 32, 32), torch.arange(6))

    def eval_batches(n, augment=False):
        asked.append((n, augment))
        while True:
            yield batch
    import methods.balenas_tf as tf
    monkeypatch.setattr(tf, "score", lambda name, net, x, y: seen.append(x) or 0.0)
    d = m.epoch_end(2, StepContext(None, None, 2, 2, 5.0, 6, 6, eval_batches))
    assert asked == [(6, False)] and d["tf_unique"] == len(seen) >= 1
    assert all(x is batch[0] for x in seen)


def test_nb1shot1_proxy_network_has_a_16_channel_stem_and_he_init():
    from spaces import get_space
    space = get_space("nb1shot1-s1")
    g = "conv3x3-bn-relu<0|maxpool3x3<0,1|conv1x1-bn-relu<1,2|conv3x3-bn-relu<0,3|output<2,4"
    torch.manual_seed(0)
    net = space.proxy_network(g)
    assert net.stem[0].out_channels == 16 and net.classifier.in_features == 64
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    big = max(convs, key=lambda c: c.weight.numel())
    k, out = big.kernel_size[0] * big.kernel_size[1], big.out_channels
    assert big.weight.std().item() == pytest.approx(math.sqrt(2.0 / (k * out)), rel=0.05)
    assert net.classifier.weight.std().item() == pytest.approx(0.01, rel=0.2)
    assert torch.equal(net.classifier.bias, torch.zeros(10))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    cfg = resolve_config("nb1shot1-s1", "balenas-tf", 0, "smoke")
    m = BalenasTF(space, space.supernet(C=2, layers=3), cfg, torch.Generator().manual_seed(0))
    assert m.proxy_network(g).stem[0].out_channels == 16


@pytest.mark.slow
def test_through_the_loop_naswot_sees_original_images_of_the_architecture_half(tmp_path, monkeypatch):
    """The images scored are exactly normalised originals (no crop, no flip) of the
    architecture half."""
    from benchmark.harness.data import MEAN, STD, find_split_file, make_split
    from benchmark.harness.worker import cached_data
    from tests.e2e import BENCH, DATA
    import methods.balenas_tf as tf
    got = []
    real = tf.score
    monkeypatch.setattr(tf, "score", lambda name, net, x, y: got.append((x, y)) or real(name, net, x, y))
    run_tiny("balenas-tf", tmp_path, ["method.num_candidates=2", "method.proxy_batch_size=16"])
    data = cached_data(str(DATA))
    _, valid, _ = make_split("official", len(data.y_train), 0, find_split_file(BENCH))
    raw = torch.from_numpy(data.x_train[valid[:32]]).permute(0, 3, 1, 2).float() / 255
    originals = (raw - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    labels = torch.from_numpy(data.y_train[valid[:32]])
    x, y = got[0]
    assert len(y) == 16
    for img, label in zip(x, y):
        hits = [i for i in range(32) if torch.allclose(originals[i], img, atol=1e-6)]
        assert len(hits) == 1 and labels[hits[0]] == label
