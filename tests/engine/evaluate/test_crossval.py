"""The one cross-validation machinery (compare, auto, audit): folds, the head solver, out-of-fold scores."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from engine.core.errors import ConfigError
from engine.evaluate.crossval import (
    HeadRecipe,
    cross_validate,
    cross_validate_repeated,
    fit_linear,
    paired_gain,
    repeated_folds,
    stratified_folds,
)


def blobs(n_per: int = 12, classes: int = 4, dim: int = 16, spread: float = 0.6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g) * 2
    y = torch.arange(classes).repeat_interleave(n_per)
    x = centers[y] + spread * torch.randn(len(y), dim, generator=g) + 5.0  # off-centre, unscaled on purpose
    return x, y


def test_folds_are_stratified_disjoint_and_cover_every_image():
    y = np.repeat(np.arange(5), 10)
    folds = stratified_folds(y, 5, seed=3)
    assert len(folds) == 5
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(50))
    for tr, te in folds:
        assert set(tr).isdisjoint(te)
        assert np.bincount(y[te], minlength=5).tolist() == [2] * 5  # every class in every fold, in proportion
    assert [te.tolist() for _, te in folds] != [te.tolist() for _, te in stratified_folds(y, 5, seed=4)]


def test_folds_shrink_to_the_data_and_refuse_too_little():
    assert len(stratified_folds([0, 0, 0, 1, 1, 1], 5, seed=0)) == 3
    with pytest.raises(ConfigError, match="too few"):
        stratified_folds([0, 1, 2], 5, seed=0)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        stratified_folds([0, 0, 1, 1], 1, seed=0)


def test_the_head_is_the_regularised_logistic_regression_on_raw_features():
    x, y = blobs(spread=2.5)
    recipe = HeadRecipe(l2=0.05)
    head = fit_linear(x, y, 4, recipe)
    probs = head(x).softmax(1).detach()
    # scikit-learn's objective is C * sum(CE) + |w|^2 / 2, ours mean(CE) + l2 |w|^2 / 2: C = 1 / (l2 N)
    z = (x - x.mean(0)) / x.std(0, unbiased=False)
    ref = LogisticRegression(C=1 / (recipe.l2 * len(y)), max_iter=5000, tol=1e-10).fit(z.numpy(), y.numpy())
    want = torch.from_numpy(ref.predict_proba(z.numpy())).float()
    assert torch.allclose(probs, want, atol=2e-3)


def test_cross_validation_scores_held_out_images_only():
    x, y = blobs()
    folds = stratified_folds(y, 4, seed=0)
    good = cross_validate(x, y, 4, folds)
    assert good.accuracy > 0.9 and good.folds == 4 and len(good.fold_accuracies) == 4
    assert torch.allclose(good.oof_probs.sum(1), torch.ones(len(y)), atol=1e-5)
    assert good.top5 == 1.0  # 4 classes: the top 5 holds every class
    # labels no feature predicts: held-out accuracy falls to chance, though each fold fits its training part
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    assert cross_validate(x, shuffled, 4, stratified_folds(shuffled, 4, seed=0)).accuracy < 0.5


def test_augmented_views_are_what_the_head_is_fitted_on():
    x, y = blobs()
    folds = stratified_folds(y, 4, seed=0)
    noise = torch.randn(len(y), 3, x.shape[1], generator=torch.Generator().manual_seed(2))
    informative = x[:, None, :].repeat(1, 3, 1) + 0.1 * noise
    assert cross_validate(x, y, 4, folds, train_views=informative).accuracy > 0.9
    assert cross_validate(x, y, 4, folds, train_views=noise).accuracy < 0.6


def test_repeated_folds_keep_each_repeats_out_of_fold_predictions():
    x, y = blobs()
    fold_sets = repeated_folds(y, 4, seed=0, repeats=3)
    cv = cross_validate_repeated(x, y, 4, fold_sets)
    assert cv.oof_by_repeat is not None and cv.oof_by_repeat.shape == (3, len(y), 4)
    assert len(cv.fold_accuracies) == 12  # every fold of every repeat, in order: two candidates pair up
    for r, folds in enumerate(fold_sets):
        one = cross_validate(x, y, 4, folds)
        assert torch.equal(cv.oof_by_repeat[r], one.oof_probs)
        assert cv.fold_accuracies[4 * r:4 * r + 4] == one.fold_accuracies
    assert torch.allclose(cv.oof_probs, cv.oof_by_repeat.mean(0))


def test_the_paired_gain_and_its_standard_error():
    gain, se = paired_gain([0.9, 0.8, 0.7], [0.8, 0.8, 0.8])
    d = np.array([0.1, 0.0, -0.1])
    assert gain == pytest.approx(0.0, abs=1e-12) and se == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert paired_gain([0.85, 0.85], [0.8, 0.8]) == pytest.approx((0.05, 0.0))  # steady: no noise at all
    with pytest.raises(ValueError, match="same folds"):
        paired_gain([0.9, 0.8], [0.8, 0.8, 0.8])


def test_the_probe_solver_is_the_probe_modes_head():
    """solver "probe" trains as engine.train.probe does (Adam, mini-batches, fixed epochs, seeded): the same seed
    gives the same head, another seed another; and it learns the blobs."""
    x, y = blobs()
    recipe = HeadRecipe(solver="probe", epochs=30, lr=1e-2, batch_size=16, seed=3)
    a, b = fit_linear(x, y, 4, recipe), fit_linear(x, y, 4, recipe)
    assert torch.equal(a.weight, b.weight)
    other = fit_linear(x, y, 4, HeadRecipe(solver="probe", epochs=30, lr=1e-2, batch_size=16, seed=4))
    assert not torch.equal(a.weight, other.weight)
    assert (a(x).argmax(1) == y).float().mean() > 0.9
