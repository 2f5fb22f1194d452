"""`tlbench train --mode auto`: a recipe chosen by repeated cross-validation on the training photos, within a
budget, then refitted on all of them (run: the job; recipes: what can be chosen; search: the scoring and the
noise rule; ensemble: the weighted ensemble candidate; refit: the final model)."""

from engine.train.auto.run import check_resumable, choose_recipe, fit_recipe, train_chosen

__all__ = ["check_resumable", "choose_recipe", "fit_recipe", "train_chosen"]
