"""Amortised synthesis (``synthesis: {method: 'generator'}``): a meta-learned generator instead of per-pixel Adam."""

import pytest
import torch
from conftest import make_tiny_teacher
from test_store import _store, _teacher_file

from zskd_plugin.amortised import AmortisedSynthesizer, ImageGenerator
from zskd_plugin.impressions import ImpressionConfig, synthesize_impressions
from zskd_plugin.synthesis import SynthesisConfig, SynthesisLoss, frozen_teacher
from zskd_plugin.teacher import InputConfig

MEAN, STD = torch.tensor([0.5]), torch.tensor([0.25])
GEN = {"method": "generator", "num_iters": 5, "first_iters": 40, "batch_size": 8, "generator_width": 4,
       "latent_dim": 16, "lr": 0.05}  # fmt: skip


@pytest.mark.parametrize("size", [(1, 32, 32), (1, 28, 28), (3, 30, 18)])
def test_the_generator_makes_images_of_the_teachers_size_in_the_pixel_range(size):
    images = ImageGenerator(16, 4, size)(torch.randn(5, 16))
    assert images.shape == (5, *size)
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"generator_width": 16}, "method: 'generator' to use them"),
        ({"method": "generator", "early_stop_tol": 1e-3}, "leave early_stop_tol out"),
        ({"method": "generator", "warm_start": True}, "leave warm_start out"),
        ({"method": "generator", "compile": True}, "leave compile out"),
        ({"method": "generator", "meta_lr": 0.0}, "meta_lr"),
        ({"method": "generator", "meta_lr": 1.5}, "meta_lr"),
        ({"method": "generators"}, "method"),
    ],
)
def test_generator_settings_that_cannot_work_are_refused_with_the_fix(settings, message):
    with pytest.raises(ValueError, match=message):
        SynthesisConfig(**settings)


def test_the_store_key_names_the_generator_only_when_it_is_on():
    pixels = ImpressionConfig(100).to_dict()["synthesis"]
    assert not {"method", "generator_width", "meta_lr", "first_iters"} & set(pixels)
    generator = ImpressionConfig(100, synthesis=SynthesisConfig(method="generator")).to_dict()["synthesis"]
    assert generator["method"] == "generator" and generator["generator_width"] == 8 and generator["meta_lr"] == 0.5


def _batch_loss(teacher, images, targets, config):
    with torch.no_grad():
        return SynthesisLoss(teacher, MEAN, STD, config)(images, targets).mean().item()


def test_adaptation_lowers_the_objective_and_the_meta_update_carries_it_to_the_next_batch():
    teacher = make_tiny_teacher()
    config = SynthesisConfig(**GEN)
    # two batches aimed at the same class, as a store's row is
    targets = torch.softmax(torch.tensor([6.0, 0.0, 0.0, 0.0]) + torch.randn(2, 8, 4), dim=-1)
    with frozen_teacher(teacher):
        synthesizer = AmortisedSynthesizer(teacher, (1, 8, 8), MEAN, STD, config, seed=0)
        fresh = ImageGenerator(16, 4, (1, 8, 8))
        z = torch.randn(8, 16)
        before = _batch_loss(teacher, fresh(z).detach(), targets[0], config)
        first = synthesizer(targets[0], torch.Generator().manual_seed(1))
        after = _batch_loss(teacher, first.images, targets[0], config)
        assert after < before - 0.1  # 40 steps on the first batch lower the objective
        assert first.images.shape == (8, 1, 8, 8) and first.steps.tolist() == [40] * 8
        # the meta-learned generator, unadapted, already serves the next batch better than a fresh one
        meta_images = synthesizer.meta.train()(z).detach()
        assert _batch_loss(teacher, meta_images, targets[1], config) < _batch_loss(
            teacher, fresh(z).detach(), targets[1], config
        )
        second = synthesizer(targets[1], torch.Generator().manual_seed(2))
        assert second.steps.tolist() == [5] * 8 and second.agreement.float().mean() >= 0.5


def test_the_synthesizer_leaves_the_global_generator_alone():
    teacher = make_tiny_teacher()  # seeds the global generator itself
    state = torch.get_rng_state()
    AmortisedSynthesizer(teacher, (1, 8, 8), MEAN, STD, SynthesisConfig(**GEN), seed=3)
    assert torch.equal(torch.get_rng_state(), state)


def test_a_generator_store_is_made_and_a_lost_part_is_made_again_as_it_was(tmp_path, caplog):
    teacher = _teacher_file(tmp_path)
    store = _store(tmp_path, teacher, synthesis=GEN)
    original = store.load()
    assert original.images.shape == (40, 1, 8, 8) and store.spec["impressions"]["synthesis"]["method"] == "generator"
    assert store.path != _store(tmp_path, teacher).path  # the pixel engine's store is another one
    store.part_path(3).unlink()  # a later part lost: the parts before it are run again, unwritten, to reach it
    stamp = store.part_path(1).stat().st_mtime_ns
    caplog.set_level("INFO")
    again = _store(tmp_path, teacher, synthesis=GEN)
    assert "re-running part 2" in caplog.text and "re-running part 4" not in caplog.text
    assert store.part_path(1).stat().st_mtime_ns == stamp
    assert torch.equal(again.load().images, original.images)


def test_under_torchrun_the_first_process_makes_every_generator_part(tmp_path):
    teacher = make_tiny_teacher()
    config = ImpressionConfig(40, synthesis=SynthesisConfig(**GEN))
    inputs = InputConfig((1, 8, 8), (0.5,), (0.25,))
    make = lambda rank: synthesize_impressions(teacher, inputs, config, tmp_path, progress=False, rank=rank,
                                               world_size=2)  # fmt: skip
    second = make(1)
    assert len(second.missing_parts()) == second.num_parts  # the second process makes none of them
    first = make(0)
    assert first.path == second.path and not first.missing_parts()
