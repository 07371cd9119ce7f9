import torch

from brain_tumor_edge.runtime.preprocess import PreprocessConfig
from brain_tumor_edge.train.architectures import get_architecture
from brain_tumor_edge.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint


def test_checkpoint_round_trip_with_weights_only_load(tmp_path):
    model = get_architecture("paper").build(4)
    original = Checkpoint(
        architecture="paper",
        class_names=("glioma", "meningioma", "notumor", "pituitary"),
        preprocess=PreprocessConfig(size=150),
        state_dict=model.state_dict(),
        epoch=3,
        seed=11,
        train_config={"epochs": 3},
        metrics={"validation_accuracy": 0.5},
    )
    path = tmp_path / "model.pt"
    save_checkpoint(original, path)
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["class_names"] == list(original.class_names)
    loaded = load_checkpoint(tmp_path)  # a run directory works too
    assert loaded.preprocess == original.preprocess and loaded.seed == 11
    x = torch.rand(1, 3, 150, 150)
    with torch.no_grad():
        assert torch.equal(loaded.build_model()(x), model.eval()(x))
