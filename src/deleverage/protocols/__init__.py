"""On-chain protocols as venues: the chain and its gas (:mod:`.chain`), the keepers who
liquidate and bid (:mod:`.keepers`), and one package per protocol (``aave/``, ...), each an
implementation of :class:`deleverage.venues.protocol.Venue`.
"""
