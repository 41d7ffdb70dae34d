"""Aave v3.3 lending as a venue: the liquidation math (:mod:`.math`), the configuration and
population (:mod:`.config`) and the venue (:mod:`.venue`)."""
