"""Networks: official parameter counts (no unused weights) and output shapes per scale."""
import numpy as np
import pytest
import torch

import ikc
from training.state import widened


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


def test_sharpening_maps_give_the_lr_detail_and_how_much_the_sr_image_was_sharpened():
    lr = torch.rand(2, 3, 12, 12)
    upsampled = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    maps = ikc.archs.sharpening_maps(0.5 + 2 * (upsampled - 0.5), lr)  # detail doubled
    assert maps.shape == (2, 4, 48, 48)
    assert torch.allclose(maps[:, :3].std(dim=(1, 2, 3)), torch.ones(2), atol=0.05)  # unit-std LR detail (up to the 1e-3 floor)
    assert torch.allclose(maps[:, 3], torch.full((2, 48, 48), float(np.log(2))), atol=0.05)


def test_a_corrector_grown_to_see_the_lr_image_starts_as_it_was_and_then_reads_it():
    torch.manual_seed(0)
    plain = ikc.Corrector(ikc.EstimatorConfig(nf=8))
    grown = ikc.Corrector(ikc.EstimatorConfig(nf=8, corrector_sees_lr=True))
    own = grown.state_dict()
    grown.load_state_dict({k: widened(v, own[k]) for k, v in plain.state_dict().items()})
    sr, lr, code = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 12, 12), torch.randn(2, ikc.CODE_LENGTH)
    assert torch.equal(grown(sr, code, lr), plain(sr, code))  # zero weights on the new inputs
    with pytest.raises(ValueError, match="pass lr"):
        grown(sr, code)
    with torch.no_grad():
        grown.convs[0].weight[:, 3:].normal_()
    assert not torch.allclose(grown(sr, code, lr), grown(sr, code, torch.rand(2, 3, 12, 12)))
    assert widened(torch.zeros(8, 3, 5, 5), torch.zeros(8, 3, 3, 3)) is None  # another kernel size does not fit


def test_the_compression_level_is_zero_for_lossless_and_grows_as_the_quality_falls():
    assert ikc.archs.compression_level(None) == 0.0
    assert ikc.archs.compression_level(90) == pytest.approx(0.1)
    assert ikc.archs.compression_level(30) == pytest.approx(0.7)


def test_an_sftmd_told_the_quality_starts_as_the_one_it_grew_from_and_then_reads_the_quality():
    torch.manual_seed(0)
    plain = ikc.SFTMD(ikc.SFTMDConfig(scale=2, nf=8, nb=1))
    told = ikc.SFTMD(ikc.SFTMDConfig(scale=2, nf=8, nb=1, quality_input=True))
    own = told.state_dict()
    told.load_state_dict({k: widened(v, own[k]) for k, v in plain.state_dict().items()})
    lr, code, level = torch.rand(2, 3, 12, 12), torch.randn(2, ikc.CODE_LENGTH) * 0.3, torch.tensor([0.1, 0.7])
    assert torch.equal(plain(lr, code), plain(lr, code, level))  # a plain SFTMD ignores the level
    assert torch.equal(told(lr, code, level), plain(lr, code))  # zero weights on the level
    with torch.no_grad():
        for layer in told.modules():
            if isinstance(layer, ikc.archs.SFTLayer):
                layer.gamma[0].weight[:, -1].normal_()
                layer.beta[0].weight[:, -1].normal_()
    assert not torch.allclose(told(lr, code, level), told(lr, code, torch.zeros(2)))
    assert torch.equal(told(lr, code), told(lr, code, torch.zeros(2)))  # no level given: lossless
