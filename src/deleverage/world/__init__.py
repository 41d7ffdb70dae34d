"""The systemic world: many venues sharing prices, traders and collateral (issue #18).

This package's clearing, backstop and holistic-risk modules are importable on their own:
:mod:`.clearing` (a clearinghouse with a default waterfall), :mod:`.backstop` (cross-chain
backstop pools for forced flow and deficits) and :mod:`.exposure` / :mod:`.risk_oracle` (a
per-trader view of risk across venues and a cross-venue risk oracle).
"""
