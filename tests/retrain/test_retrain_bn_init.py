"""The retraining network's BN weight init: today's ones (default) or PyTorch 0.3's U[0, 1),
the init the DARTS authors' code ran under (`--set bn_init=uniform`)."""
import pytest
import torch

from benchmark.retrain.profiles import resolve
from benchmark.retrain.train import build_model
from spaces.darts import DARTS_V2


def _bn_weights(model):
    return torch.cat([m.weight.detach().flatten() for m in model.modules()
                      if isinstance(m, torch.nn.BatchNorm2d) and m.affine])


def test_default_is_ones_and_keeps_the_identity():
    cfg = resolve(DARTS_V2, 0, "smoke")
    assert cfg.bn_init == "ones" and "bn_init" not in cfg.to_json()   # older identities still match
    torch.manual_seed(0)
    assert torch.equal(_bn_weights(build_model(cfg, 10)), torch.ones_like(_bn_weights(build_model(cfg, 10))))


def test_uniform_is_pytorch_03s_init_and_part_of_the_identity():
    cfg = resolve(DARTS_V2, 0, "smoke", sets=["bn_init=uniform"])
    assert cfg.to_json()["bn_init"] == "uniform"
    assert cfg.to_json() != resolve(DARTS_V2, 0, "smoke").to_json()
    torch.manual_seed(0)
    w = _bn_weights(build_model(cfg, 10))
    assert w.min() >= 0 and w.max() < 1 and 0.4 < float(w.mean()) < 0.6 and len(w.unique()) > 100
    from benchmark.retrain.profiles import RetrainConfig
    assert RetrainConfig.from_json(cfg.to_json()) == cfg


def test_a_bad_bn_init_is_refused_naming_the_option():
    with pytest.raises(ValueError, match="bn_init.*ones.*uniform"):
        resolve(DARTS_V2, 0, "smoke", sets=["bn_init=normal"])
