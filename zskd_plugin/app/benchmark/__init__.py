"""``zskd benchmark``: the paper's table (Nayak et al., ICML 2019, Table 1 and Fig. 3) on one data set, or the table
of a timm BatchNorm teacher (ZSKD without and with the BatchNorm prior, beside DeepInversion's recipe).

Every row is a torchdistill pipeline derived from a shipped config in ``yaml_configs/<suite>/`` with the row's
settings (epochs, Data Impression count, synthesis and augmentation, seed) written into a config file of its own,
so each row's figure comes with the exact command that reproduces it. Rows already measured with the same config
are reused, so an interrupted suite resumes.

All student rows share the teacher, the student architecture, the optimiser, the learning-rate schedule, the batch
size (the ZSKD config's) and the distillation budget: the number of training images seen. The ZSKD rows train for the
scale's epochs on their DIs; a row with another training-set size (real data, fewer DIs) trains for as many epochs as
see the same number of images.
The reported accuracy of a student row is the real test set's at the last epoch (no epoch is selected); the test
accuracy of the checkpoint chosen on the held-out split is recorded beside it. The teacher's is that of its
checkpoint the students are distilled from, chosen on held-out real images.
"""

from __future__ import annotations

from .plan import RowPlan, plan_rows
from .run import run_suite
from .suites import SCALES, SUITES, Scale, Suite, suite_scale

__all__ = ["SCALES", "SUITES", "RowPlan", "Scale", "Suite", "plan_rows", "run_suite", "suite_scale"]
