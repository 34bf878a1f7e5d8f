import numpy as np
import pytest
import torch

from zskd_plugin.dirichlet import DirichletConfig, sample_soft_targets, split_counts


def _samples(beta, n=20000, seed=0):
    conc = torch.tensor([1.0, 0.5, 0.2, 0.05, 1e-4])
    return conc, sample_soft_targets(conc, beta, n, np.random.default_rng(seed))


@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_samples_lie_on_the_simplex_with_the_dirichlet_mean(beta):
    conc, y = _samples(beta)
    assert y.shape == (20000, 5)
    assert (y >= 0).all()
    assert torch.allclose(y.sum(dim=1), torch.ones(20000), atol=1e-5)
    assert torch.allclose(y.mean(dim=0), conc / conc.sum(), atol=0.01)  # E[y] = alpha / sum(alpha), any beta


def test_smaller_beta_gives_sparser_more_confident_targets():
    conc, dense = _samples(1.0)
    _, sparse = _samples(0.1)
    # Var[y_k] = m_k (1 - m_k) / (beta * sum(c) + 1): the spread grows as beta shrinks.
    m = conc / conc.sum()
    for beta, y in ((1.0, dense), (0.1, sparse)):
        expected_var = m * (1 - m) / (beta * conc.sum() + 1)
        assert torch.allclose(y.var(dim=0), expected_var, rtol=0.1, atol=1e-4)
    assert sparse.max(dim=1).values.mean() > dense.max(dim=1).values.mean() + 0.15


def test_same_generator_seed_same_targets():
    _, a = _samples(0.1, n=100, seed=3)
    _, b = _samples(0.1, n=100, seed=3)
    _, c = _samples(0.1, n=100, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_split_counts_sums_exactly():
    assert split_counts(7, (0.5, 0.5)) == [4, 3]
    assert sum(split_counts(24000, (0.1,) * 10)) == 24000
    assert split_counts(10, (1.0, 0.0)) == [10, 0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"betas": (1.0, 0.1), "beta_shares": (1.0,)}, "same length"),
        ({"betas": (1.0, 0.1), "beta_shares": (0.7, 0.7)}, "sum to 1"),
        ({"betas": (1.0, -0.1)}, r"betas\[1\] must be a finite number > 0"),
        ({"betas": ()}, "betas must be a non-empty list"),
    ],
)
def test_config_rejects_betas_and_shares_that_do_not_fit(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DirichletConfig(**kwargs)
