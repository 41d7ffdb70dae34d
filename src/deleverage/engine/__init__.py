"""The one stateful perpetuals engine.

:class:`~deleverage.engine.exchange.Exchange` holds the columnar state (``state``), applies
events (``events``: the journal) and runs the risk step on every mark
(:mod:`deleverage.engine.risk`); ``kernels`` holds its compiled kernels, ``levels``,
``level_index`` and ``cross_index`` the indices that make quiet marks cheap, ``bulk`` the bulk
loaders, ``replay`` the journal replay and ``insurance_fund`` the fund ledgers. The math it
applies comes from :mod:`deleverage.rules`; the venue-specific choices arrive as policy objects
(:mod:`deleverage.engine.policies`) built from a market's spec.
"""
