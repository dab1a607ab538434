"""Networks: official parameter counts (no unused weights) and output shapes per scale."""
import pytest
import torch

import ikc


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_official_sizes_match_the_reference_counts():
    # the reference sheet's counts are for a 10-entry code (no noise entry)
    assert count(ikc.SFTMD(ikc.SFTMDConfig(code_length=10))) == 4_234_691
    assert count(ikc.Predictor(ikc.EstimatorConfig(code_length=10))) == 430_730
    assert count(ikc.Corrector(ikc.EstimatorConfig(code_length=10))) == 649_930


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_for_each_scale(scale):
    sftmd = ikc.SFTMD(ikc.SFTMDConfig(scale=scale, nf=8, nb=1))
    lr, code = torch.rand(2, 3, 10, 13), torch.randn(2, ikc.CODE_LENGTH)
    sr = sftmd(lr, code)
    assert sr.shape == (2, 3, 10 * scale, 13 * scale)
    assert sr.min() >= 0 and sr.max() <= 1
    assert ikc.Predictor(ikc.EstimatorConfig(nf=8))(lr).shape == (2, ikc.CODE_LENGTH)
    assert ikc.Corrector(ikc.EstimatorConfig(nf=8))(sr, code).shape == (2, ikc.CODE_LENGTH)


def test_every_parameter_is_used():
    sftmd = ikc.SFTMD(ikc.SFTMDConfig(nf=8, nb=2))
    sftmd(torch.rand(1, 3, 8, 8), torch.randn(1, ikc.CODE_LENGTH)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sftmd.parameters())


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale must be one of"):
        ikc.SFTMD(ikc.SFTMDConfig(scale=5))
