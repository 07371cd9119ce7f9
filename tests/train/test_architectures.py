import pytest
import torch
from torch import nn

from brain_tumor_edge.train.architectures import ARCHITECTURES, Network, get_architecture, parameter_count


def test_paper_network_matches_the_papers_layer_list():
    arch = get_architecture("paper")
    assert arch.preprocess.size == 150
    model = arch.build(4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 128]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # The flatten size is measured from the input size: 150 -> 7 x 7 x 128.
    assert [(m.in_features, m.out_features) for m in linears] == [(6272, 512), (512, 4)]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5]
    # 896 + 18,496 + 73,856 + 147,584 conv + 3,211,776 + 2,052 dense (the Keras summary's total)
    assert parameter_count(model) == 3_454_660


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_keeps_the_network_contract(name: str):
    """forward = forward_head(forward_features), pre-logits feed the classifier, and where the
    network is spatial its head only pools (what export's activation maps rely on)."""
    arch = ARCHITECTURES[name]
    model = arch.build(3).eval()
    assert isinstance(model, Network)
    size = arch.preprocess.size
    with torch.no_grad():
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        features = model.forward_features(x)
        vector = model.forward_head(features, pre_logits=True)
        assert vector.shape == (2, model.classifier.in_features)
        assert torch.allclose(model(x), model.classifier(vector), atol=1e-6)
        assert torch.allclose(model.forward_head(features), model(x), atol=1e-6)
        if model.spatial:  # pooled networks: the classifier reads the maps' means
            assert features.ndim == 4 and torch.allclose(features.mean(dim=(2, 3)), vector, atol=1e-6)


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(ValueError, match="paper"):
        get_architecture("vgg99")


def test_fine_feature_maps_hold_the_coarse_maps_on_every_other_cell():
    """Shift-and-stitch: twice the resolution, the same network; no retraining needed."""
    from brain_tumor_edge.train.architectures import CompactResNet

    network = CompactResNet(4).eval()
    generator = torch.Generator().manual_seed(0)
    for module in network.modules():  # trained-looking batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1, generator=generator)
            module.running_var.uniform_(0.5, 2, generator=generator)
    image = torch.randn(2, 3, 160, 160, generator=generator)
    with torch.no_grad():
        coarse, fine = network.forward_features(image), network.fine_feature_maps(image)
    assert coarse.shape == (2, 192, 10, 10) and fine.shape == (2, 192, 20, 20)
    assert torch.allclose(fine[:, :, ::2, ::2], coarse, atol=1e-5)
    assert not torch.allclose(fine[:, :, 1::2, 1::2], coarse, atol=1e-2)  # the new cells are new
