"""Pure, stateless mechanism math: margin, liquidation sizing and prices, ADL ranking and
allocation, insurance-fund share arithmetic, price impact and dynamic risk parameters.

Every function takes arrays or scalars and returns new ones (no state, no I/O), so each can be
tested against a venue's worked examples and compiled or vectorized freely. The engine
(:mod:`deleverage.engine`) and the analytics call them; they import nothing above
:mod:`deleverage.spec`.
"""
