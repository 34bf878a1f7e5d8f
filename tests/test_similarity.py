import pytest
import timm
import torch
import torchvision
from torch import nn

from zskd_plugin.models import create_model
from zskd_plugin.similarity import class_similarity, find_classifier


def test_similarity_rows_are_min_max_normalised_with_self_at_the_top():
    torch.manual_seed(0)
    w = torch.randn(10, 84)
    c = class_similarity(w, epsilon=1e-4)
    assert c.shape == (10, 10)
    assert torch.allclose(c.min(dim=1).values, torch.full((10,), 1e-4), atol=1e-6)
    assert torch.allclose(c.max(dim=1).values, torch.full((10,), 1 + 1e-4), atol=1e-6)
    assert torch.equal(c.argmax(dim=1), torch.arange(10))  # each class is most similar to itself
    assert (c > 0).all()


def test_similarity_is_the_min_max_normalised_cosine():
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    c = class_similarity(w, epsilon=0.0)
    cos = torch.tensor([[1.0, 0.5**0.5, -1.0], [0.5**0.5, 1.0, -(0.5**0.5)], [-1.0, -(0.5**0.5), 1.0]])
    lo, hi = cos.min(1, keepdim=True).values, cos.max(1, keepdim=True).values
    assert torch.allclose(c, (cos - lo) / (hi - lo), atol=1e-6)


def test_similarity_ignores_row_scale():
    torch.manual_seed(1)
    w = torch.randn(5, 7)
    scaled = w * torch.tensor([[1.0], [10.0], [0.1], [3.0], [7.0]])
    assert torch.allclose(class_similarity(w), class_similarity(scaled), atol=1e-6)


def test_similarity_rejects_bad_shapes():
    with pytest.raises(ValueError, match="num_classes >= 2"):
        class_similarity(torch.randn(1, 5))


def test_classifier_found_through_timm_get_classifier():
    model = timm.create_model("resnet10t", num_classes=7, in_chans=1)
    assert find_classifier(model, 7) is model.get_classifier()


def test_classifier_found_on_torchvision_model_as_last_linear():
    model = torchvision.models.mobilenet_v3_small(num_classes=5)
    assert find_classifier(model, 5) is model.classifier[-1]


def test_classifier_found_on_custom_model(tiny_teacher):
    assert find_classifier(tiny_teacher, 4) is tiny_teacher.head.fc
    assert find_classifier(create_model("lenet5"), 10).out_features == 10


def test_classifier_named_by_path(tiny_teacher):
    assert find_classifier(tiny_teacher, module_path="head.fc") is tiny_teacher.head.fc


def test_missing_classifier_says_how_to_name_it():
    conv_only = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="classifier_path"):
        find_classifier(conv_only, 4)


def test_wrong_path_and_wrong_class_count_are_explained(tiny_teacher):
    with pytest.raises(ValueError, match="does not exist.*'head.fc'"):
        find_classifier(tiny_teacher, module_path="head.classifier")
    with pytest.raises(ValueError, match="not nn.Linear"):
        find_classifier(tiny_teacher, module_path="body")
    with pytest.raises(ValueError, match="out_features=10"):
        find_classifier(tiny_teacher, 10)
