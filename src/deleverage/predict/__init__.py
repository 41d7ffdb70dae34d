"""Predictive liquidation: datasets from simulations, models, evaluation, proactive policies.

- :mod:`~deleverage.predict.features`: what a venue can see per account and step, recorded
  while a simulation runs (leakage-free by construction);
- :mod:`~deleverage.predict.labels`: liquidated within a horizon (accounts), liquidated notional
  above a level within a horizon (markets);
- :mod:`~deleverage.predict.dataset`: datasets over seeds, written as Parquet with a documented
  schema (docs/predict.md), splits by seed and by time;
- :mod:`~deleverage.predict.models`: the analytic baseline, logistic regression and gradient
  boosted trees (scikit-learn) with calibrated probabilities; saved with their feature schema,
  version and training seed, refused on mismatch;
- :mod:`~deleverage.predict.evaluate`: Brier score, log loss, precision-recall, reliability
  diagram, lead time; :mod:`~deleverage.predict.card`: the model card (HTML);
- :mod:`~deleverage.predict.proactive`: proactive margin and predictive deleveraging in a run,
  and their evaluation on the same seeds with and without them.
"""
