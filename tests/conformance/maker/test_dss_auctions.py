"""The Flipper's timing rules (dss ``flip.t.sol``) on the venue's Flipper.

makerdao/dss @ fa4f6630afb0624d04a003e920b0d71a00331d98, ``src/test/flip.t.sol``, with the
contract's defaults (``beg`` 5%, ``ttl`` 3 hours, ``tau`` 2 days): ``test_deal`` (a bid can be
dealt only after ``ttl``, or after the auction's ``end``), ``test_tick`` (an auction past
``end`` without bids restarts and is biddable again), ``test_tend`` (the highest bidder
replaces the previous one, who is refunded).
"""

from __future__ import annotations

import numpy as np

from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.protocols.maker.actions import ActionLog, SaleLog, StepContext
from deleverage.protocols.maker.config import FlipperConfig, VowConfig
from deleverage.protocols.maker.flipper import Flipper
from deleverage.protocols.maker.vow import Vow

S = 10**9
H = 3600
DSS = FlipperConfig(beg=1.05, ttl_s=3 * H, tau_s=2 * 24 * H)


def _ctx(t_s: int, keepers: Keepers) -> StepContext:
    gas = np.zeros(len(keepers))
    return StepContext(t_s * S, t_s // 12, 4.0, 4.0, 0.0, gas, 1e12, 1.0)


def _world(latency_blocks: int = 0, count: int = 1) -> tuple[Flipper, Keepers, Vow]:
    spec = KeeperSpec(capital=200.0, latency_blocks=latency_blocks, count=count)
    return Flipper(DSS), Keepers(KeepersConfig(keepers=(spec,))), Vow(VowConfig())


def _run(flipper: Flipper, keepers: Keepers, vow: Vow, t_s: int) -> None:
    flipper.run(_ctx(t_s, keepers), keepers, vow, ActionLog(), SaleLog())


def test_deal_only_after_ttl() -> None:
    flipper, keepers, vow = _world()
    flipper.kick(vault=0, tab=50.0, lot=100.0, due=45.0, ctx=_ctx(0, keepers))
    _run(flipper, keepers, vow, 0)  # a lone keeper tends its first bid
    assert flipper.flips[0].guy == 0
    _run(flipper, keepers, vow, 3 * H - 1)  # ttl not passed: no deal
    assert len(flipper.flips) == 1
    _run(flipper, keepers, vow, int(4.1 * H))  # test_deal: 4.1 hours later it deals
    assert flipper.flips == []


def test_deal_after_end_even_within_ttl() -> None:
    # test_deal, second auction: a tend at 44 h cannot be dealt at once; after end (48 h) it can.
    flipper, keepers, vow = _world(latency_blocks=44 * H // 12)
    flipper.kick(vault=0, tab=50.0, lot=100.0, due=45.0, ctx=_ctx(0, keepers))
    _run(flipper, keepers, vow, 44 * H)
    assert flipper.flips[0].tic_ns == (44 + 3) * H * S
    _run(flipper, keepers, vow, 44 * H + 1)
    assert len(flipper.flips) == 1
    _run(flipper, keepers, vow, 44 * H + 24 * H)
    assert flipper.flips == []


def test_tick_restarts_an_auction_without_bids() -> None:
    # test_tick: past end (2 weeks) without a bid the auction restarts and can be bid on.
    flipper, keepers, vow = _world(latency_blocks=100_000)  # 13.9 days of 12 s blocks
    flipper.kick(vault=0, tab=50.0, lot=100.0, due=45.0, ctx=_ctx(0, keepers))
    _run(flipper, keepers, vow, H)
    assert flipper.flips[0].end_ns == 48 * H * S
    assert flipper.ticks == 0
    _run(flipper, keepers, vow, 14 * 24 * H)
    flip = flipper.flips[0]
    assert flipper.ticks == 1
    assert flip.end_ns == (14 * 24 + 48) * H * S
    assert flip.guy == 0  # biddable again: the keeper's bid stands


def test_a_higher_bid_refunds_the_previous_bidder() -> None:
    # test_tend: the outbid keeper gets its DAI back, the new high bidder's is locked.
    flipper, keepers, vow = _world(count=2)
    flipper.kick(vault=0, tab=50.0, lot=100.0, due=45.0, ctx=_ctx(0, keepers))
    _run(flipper, keepers, vow, 0)  # both compete: the bid goes to tab at once
    flip = flipper.flips[0]
    assert flip.bid == 50.0
    locked = 200.0 * 2 - keepers.capital.sum()
    assert locked == flip.bid  # only the winner's bid is locked, the rival was refunded
