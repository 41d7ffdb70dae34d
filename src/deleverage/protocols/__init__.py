"""DeFi protocols as :class:`~deleverage.venues.protocol.Venue` implementations.

Each protocol is a subpackage with its pure math, its bounded configuration and builder, and
its venue: ``gmx`` (GMX v2 oracle-pool perpetuals) and ``synthetix`` (Synthetix perps v3);
``oracle_pool`` holds what those two share.
"""
