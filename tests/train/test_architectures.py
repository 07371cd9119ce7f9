import torch
from torch import nn

from brain_tumor_edge.train.architectures import ARCHITECTURES, get_architecture, parameter_count


def test_paper_network_matches_the_papers_layer_list():
    arch = get_architecture("paper")
    assert arch.input_size == 150
    model = arch.build(4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 128]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6272, 512), (512, 4)]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5]
    # 896 + 18,496 + 73,856 + 147,584 conv + 3,211,776 + 2,052 dense (the Keras summary's total)
    assert parameter_count(model) == 3_454_660


def test_every_architecture_maps_its_input_to_class_logits():
    for arch in ARCHITECTURES.values():
        model = arch.build(4).eval()
        with torch.no_grad():
            out = model(torch.zeros(2, 3, arch.input_size, arch.input_size))
        assert out.shape == (2, 4)


def test_unknown_architecture_names_the_known_ones():
    try:
        get_architecture("vgg99")
    except ValueError as exc:
        assert "paper" in str(exc)
    else:
        raise AssertionError("expected ValueError")
