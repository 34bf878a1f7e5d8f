"""Amortised Data Impression synthesis: a generator with a meta-learned initialisation (``synthesis: {method:
'generator'}``).

Fang et al., "Up to 100x Faster Data-free Knowledge Distillation", AAAI 2022 (FastDFKD): rather than optimising
every image from noise, a small generator ``G`` makes a batch from latent codes ``z``, and each batch starts from a
meta-learned generator ``theta`` and adapts it for a few steps on its own objective. After the batch,
``theta`` moves towards the adapted weights ``theta_k`` (Reptile, Nichol et al. 2018, the first-order
meta-update FastDFKD uses):

.. math::
    \\theta \\leftarrow \\theta + \\epsilon \\, (\\theta_k - \\theta)

so what every batch shares (strokes, the teacher's feature statistics) is learned once and each batch only adds its
own. The objective is the engine's (:class:`~zskd_plugin.synthesis.SynthesisLoss`: the ZSKD targets, temperature
and priors, the BatchNorm prior included), averaged over the batch.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from .synthesis import SynthesisConfig, SynthesisLoss, SynthesisResult, module_device, random_view, scored_result

__all__ = ["ImageGenerator", "AmortisedSynthesizer"]

_GENERATOR_BETAS = (0.5, 0.999)  # Adam's betas for generators since DCGAN (Radford et al. 2016), as FastDFKD's


class ImageGenerator(nn.Module):
    """A DCGAN-style image generator of the kind FastDFKD adapts: latent code -> linear -> ``2 * width`` maps at a
    quarter of the image size -> two (2x nearest upsampling, 3x3 conv, BatchNorm, LeakyReLU) blocks, the second to
    ``width`` channels -> 3x3 conv to the image's channels -> sigmoid, so pixels lie in [0, 1] as the engine's do.
    Sizes that are not multiples of 4 are made at the next multiple and cropped."""

    def __init__(self, latent_dim: int, width: int, input_size: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, width_px = input_size
        self.size = (height, width_px)
        self.start = (math.ceil(height / 4), math.ceil(width_px / 4))
        self.maps = 2 * width
        self.project = nn.Linear(latent_dim, self.maps * self.start[0] * self.start[1])
        self.body = nn.Sequential(
            nn.BatchNorm2d(self.maps),
            *self._upsampling_block(self.maps, self.maps),
            *self._upsampling_block(self.maps, width),
            nn.Conv2d(width, channels, 3, padding=1),
        )

    @staticmethod
    def _upsampling_block(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            nn.Upsample(scale_factor=2),
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2),
        ]

    def forward(self, z: Tensor) -> Tensor:
        x = self.project(z).view(z.shape[0], self.maps, *self.start)
        return torch.sigmoid(self.body(x))[:, :, : self.size[0], : self.size[1]]


class AmortisedSynthesizer:
    """Makes batch after batch of Data Impressions from one meta-learned generator (its state carries over, so the
    batches of a store are made in order, by one instance).

    Args:
        teacher: frozen classifier (wrap the use in :func:`~zskd_plugin.synthesis.frozen_teacher`).
        input_size: (C, H, W) of the teacher's input.
        mean, std: (C,) input normalisation.
        config: the synthesis settings (``method: generator``).
        seed: seeds the generator's initial weights.
        loss_fn: the engine's loss, built once per store; made from ``teacher`` and ``config`` when omitted.
    """

    def __init__(
        self,
        teacher: nn.Module,
        input_size: tuple[int, int, int],
        mean: Tensor,
        std: Tensor,
        config: SynthesisConfig,
        seed: int,
        loss_fn: SynthesisLoss | None = None,
    ) -> None:
        if config.method != "generator":
            raise ValueError(f"AmortisedSynthesizer needs synthesis method: 'generator', got {config.method!r}")
        self.teacher, self.mean, self.std, self.config = teacher, mean, std, config
        self.device = module_device(teacher)
        self.loss_fn = loss_fn or SynthesisLoss(teacher, mean, std, config)
        with torch.random.fork_rng(devices=[]):  # seeded weights; torch's global generator is left as it was
            torch.manual_seed(seed)
            self.meta = ImageGenerator(config.latent_dim, config.generator_width, input_size)
        self.meta.to(self.device)
        self.batches = 0

    def __call__(self, targets: Tensor, generator: torch.Generator) -> SynthesisResult:
        """One batch for (B, K) ``targets``: latents drawn from ``generator`` (which also draws the jitter and
        flips), the meta-learned generator adapted for ``num_iters`` steps (``first_iters`` for the first batch),
        then the meta-update.

        Raises:
            FloatingPointError: the loss became NaN or Inf.
        """
        config, targets = self.config, targets.to(self.device)
        steps = config.first_iters if self.batches == 0 else config.num_iters
        adapted = copy.deepcopy(self.meta).train()
        z = torch.randn((targets.shape[0], config.latent_dim), generator=generator).to(self.device)
        z.requires_grad_(True)
        optimiser = torch.optim.Adam(
            [{"params": list(adapted.parameters()), "lr": config.generator_lr}, {"params": [z], "lr": config.lr}],
            betas=_GENERATOR_BETAS,
        )
        base_lrs = [group["lr"] for group in optimiser.param_groups]
        for step in range(steps):
            if config.lr_schedule == "cosine":
                for group, base in zip(optimiser.param_groups, base_lrs, strict=True):
                    group["lr"] = base * 0.5 * (1.0 + math.cos(math.pi * step / steps))
            losses = self.loss_fn(random_view(adapted(z), config, generator), targets)
            loss = losses.mean()
            if (step + 1) % config.early_stop_every == 0 and not torch.isfinite(loss):
                raise FloatingPointError(f"synthesis loss became NaN or Inf at step {step + 1}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            for meta, new in zip(self.meta.parameters(), adapted.parameters(), strict=True):
                meta.add_(new - meta, alpha=config.meta_lr)
            for meta, new in zip(self.meta.buffers(), adapted.buffers(), strict=True):
                meta.copy_(new)  # BatchNorm's running statistics (unused: the generator always runs on a batch)
            images = adapted(z)
        self.batches += 1
        return scored_result(
            self.teacher,
            images,
            targets,
            self.mean,
            self.std,
            config.temperature,
            torch.full((targets.shape[0],), steps, dtype=torch.long),
        )
