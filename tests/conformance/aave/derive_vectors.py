"""Derive vectors.json: the Aave v3.3 test scenarios (README.md) through the contract's own
integer arithmetic, restated step by step from LiquidationLogic.sol / GenericLogic.sol /
LiquidationDataProvider.sol at tag v3.3.0 (percentMul / percentDiv round half up, divisions
round down, wad = 1e18, base currency USD with 8 decimals).

Run: python tests/conformance/aave/derive_vectors.py  (rewrites vectors.json next to it).
This is the integer oracle the float model is checked against; it is not imported by the
package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Res = dict[str, dict[str, int]]
Amounts = dict[str, int]

PCT = 10_000
WAD = 10**18
CF_HF = 95 * 10**16  # CLOSE_FACTOR_HF_THRESHOLD 0.95e18
MIN_BASE = 2000 * 10**8  # MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
MIN_LEFT = MIN_BASE // 2  # MIN_LEFTOVER_BASE

# AaveV3TestListing (tests/mocks/AaveV3TestListing.sol): price (8 decimals), decimals, LT, bonus,
# protocol fee, all in basis points as the contract stores them.
RESERVES = {
    "USDX": {"price": 1 * 10**8, "decimals": 6, "lt": 8600, "bonus": 10500, "fee": 1000},
    "WBTC": {"price": 27000 * 10**8, "decimals": 8, "lt": 8600, "bonus": 10500, "fee": 1000},
    "WETH": {"price": 1800 * 10**8, "decimals": 18, "lt": 8600, "bonus": 10500, "fee": 1000},
}


def pmul(v: int, p: int) -> int:
    return (v * p + PCT // 2) // PCT


def pdiv(v: int, p: int) -> int:
    return (v * PCT + p // 2) // p


def calc_price(price: int, percent: int) -> int:  # TestnetProcedures._calcPrice
    if percent == 0:
        return price
    r = pmul(price, percent)
    return r - price if r > price else price - r


def account_data(res: Res, coll: Amounts, debt: Amounts) -> tuple[int, int, int, int]:
    total_c = total_d = avg_lt = 0
    for name, amount in coll.items():
        r = res[name]
        value = amount * r["price"] // 10 ** r["decimals"]
        total_c += value
        avg_lt += value * r["lt"]
    for name, amount in debt.items():
        r = res[name]
        # GenericLogic._getUserDebtInBaseCurrency rounds down in v3.3.0
        total_d += amount * r["price"] // 10 ** r["decimals"]
    avg_lt = avg_lt // total_c if total_c else 0
    hf = 2**256 - 1 if total_d == 0 else (pmul(total_c, avg_lt) * WAD + total_d // 2) // total_d
    return total_c, total_d, avg_lt, hf


def borrow_to_hf(res: Res, coll: Amounts, debt: Amounts, asset: str, desired_hf: int) -> Amounts:
    # PoolLiquidationCloseFactorTests._borrowToBeBelowHf / _getRequiredBorrowsForHfBelow
    total_c, total_d, avg_lt, _ = account_data(res, coll, debt)
    required = (pmul(total_c, avg_lt + 1) * WAD) // desired_hf - total_d
    amount = required * 10 ** res[asset]["decimals"] // res[asset]["price"]
    debt = dict(debt)
    debt[asset] = debt.get(asset, 0) + amount
    return debt


def collateral_for(
    res: Res, c: str, d: str, debt_to_cover: int, balance: int
) -> tuple[int, int, int, int]:
    rc, rd = res[c], res[d]
    cu, du = 10 ** rc["decimals"], 10 ** rd["decimals"]
    base = rd["price"] * debt_to_cover * cu // (rc["price"] * du)
    max_c = pmul(base, rc["bonus"])
    if max_c > balance:
        amount = balance
        needed = pdiv(rc["price"] * amount * du // (rd["price"] * cu), rc["bonus"])
    else:
        amount, needed = max_c, debt_to_cover
    in_base = amount * rc["price"] // cu
    fee = 0
    if rc["fee"]:
        fee = pmul(amount - pdiv(amount, rc["bonus"]), rc["fee"])
        amount -= fee
    return amount, needed, fee, in_base


def provider_adjust(
    res: Res, c: str, d: str, amount: int, needed: int, fee: int, balance: int, user_debt: int
) -> tuple[int, int, int]:
    # LiquidationDataProvider._adjustAmountsForGoodLeftovers (v3.3.0)
    rc, rd = res[c], res[d]
    cu, du = 10 ** rc["decimals"], 10 ** rd["decimals"]
    if amount + fee < balance and needed < user_debt:
        c_left = (balance - amount - fee) * rc["price"] // cu
        d_left = (user_debt - needed) * rd["price"] // du
        if c_left < MIN_LEFT or d_left < MIN_LEFT:
            dc = MIN_LEFT - c_left if c_left < MIN_LEFT else 0
            dd = MIN_LEFT - d_left if d_left < MIN_LEFT else 0
            if dc > dd:
                amount -= dc * cu // rc["price"]
                needed = pdiv(rc["price"] * amount * du // (rd["price"] * cu), rc["bonus"])
            else:
                needed -= dd * du // rd["price"]
                amount = pmul(rd["price"] * needed * cu // (rc["price"] * du), rc["bonus"])
            if rc["fee"]:
                fee = pmul(amount - pdiv(amount, rc["bonus"]), rc["fee"])
                amount -= fee
    return amount, needed, fee


def liquidate(
    res: Res,
    coll: Amounts,
    debt: Amounts,
    c: str,
    d: str,
    debt_to_cover: int,
    use_provider: bool = False,
) -> dict[str, Any]:
    total_c, total_d, _, hf = account_data(res, coll, debt)
    out: dict[str, Any] = {"health_factor_wad": hf}
    if hf >= WAD:
        return {**out, "reverts": "HEALTH_FACTOR_NOT_BELOW_THRESHOLD"}
    rc, rd = res[c], res[d]
    cu, du = 10 ** rc["decimals"], 10 ** rd["decimals"]
    balance, user_debt = coll[c], debt[d]
    debt_base = user_debt * rd["price"] // du
    coll_base = balance * rc["price"] // cu
    max_debt = user_debt
    if coll_base >= MIN_BASE and debt_base >= MIN_BASE and hf > CF_HF:
        part = pmul(total_d, 5000)
        if debt_base > part:
            max_debt = part * du // rd["price"]
    out["close_factor_max_debt"] = max_debt
    if use_provider:
        debt_to_cover = min(debt_to_cover, max_debt)
        amount, needed, fee, _ = collateral_for(res, c, d, debt_to_cover, balance)
        _, debt_to_cover, _ = provider_adjust(res, c, d, amount, needed, fee, balance, user_debt)
        out["provider_debt_to_cover"] = debt_to_cover
    actual = min(debt_to_cover, max_debt)
    amount, needed, fee, in_base = collateral_for(res, c, d, actual, balance)
    if needed < user_debt and amount + fee < balance:
        d_ok = (user_debt - needed) * rd["price"] // du >= MIN_LEFT
        c_ok = (balance - amount - fee) * rc["price"] // cu >= MIN_LEFT
        if not (d_ok and c_ok):
            return {**out, "reverts": "MUST_NOT_LEAVE_DUST"}
    out.update(debt_repaid=needed, collateral_to_liquidator=amount, protocol_fee=fee)
    deficit: Amounts = {}
    if total_c == in_base:  # hasNoCollateralLeft
        for name, owed in debt.items():
            left = owed - (needed if name == d else 0)
            if left:
                deficit[name] = left
    out["deficit"] = deficit
    return out


MAX = 2**256 - 1


def scenarios() -> list[dict[str, Any]]:
    r = RESERVES
    out: list[dict[str, Any]] = []

    def add(
        name: str,
        source: str,
        reserves: Res,
        coll: Amounts,
        debt: Amounts,
        c: str,
        d: str,
        cover: int,
        provider: bool = False,
    ) -> None:
        expected = liquidate(reserves, coll, debt, c, d, cover, provider)
        out.append(
            {
                "name": name,
                "source": source,
                "reserves": {k: reserves[k] for k in sorted({*coll, *debt})},
                "collateral": {k: str(v) for k, v in coll.items()},
                "debt": {k: str(v) for k, v in debt.items()},
                "collateral_reserve": c,
                "debt_reserve": d,
                "debt_to_cover": "max" if cover == MAX else str(cover),
                "use_liquidation_data_provider": provider,
                "expected": {
                    k: (
                        str(v)
                        if isinstance(v, int)
                        else {kk: str(vv) for kk, vv in v.items()}
                        if isinstance(v, dict)
                        else v
                    )
                    for k, v in expected.items()
                },
            }
        )

    def priced(asset: str, drop: int) -> Res:
        res = {k: dict(v) for k, v in r.items()}
        res[asset]["price"] = calc_price(r[asset]["price"], drop)
        return res

    liq = "tests/protocol/pool/Pool.Liquidations.t.sol"
    cf = "tests/protocol/pool/Pool.Liquidations.CloseFactor.t.sol"
    add(
        "partial_liquidation_wbtc_usdx",
        f"{liq}::test_partial_liquidate_variable_borrow",
        priced("WBTC", 2500),
        {"WBTC": 10**8},
        {"USDX": 20500 * 10**6},
        "WBTC",
        "USDX",
        106 * 10**6,
    )
    nofee = priced("WBTC", 1600)
    nofee["WBTC"]["fee"] = 0
    add(
        "close_factor_50_no_fee",
        f"{liq}::test_liquidate_variable_borrow_no_fee",
        nofee,
        {"WBTC": 10**8},
        {"USDX": 20500 * 10**6},
        "WBTC",
        "USDX",
        MAX,
    )
    add(
        "full_liquidation_of_one_of_two_debts",
        f"{liq}::test_full_liquidate_multiple_variable_borrows",
        priced("WBTC", 3000),
        {"WBTC": 10**8},
        {"USDX": 200 * 10**6 - 1, "WETH": 10 * 10**18},
        "WBTC",
        "USDX",
        MAX,
    )
    add(
        "small_collateral_seized_in_full",
        f"{liq}::test_full_liquidate_multiple_supplies_and_variable_borrows",
        priced("WBTC", 3000),
        {"WBTC": 10**8, "WETH": 10**16},
        {"USDX": 200 * 10**6 - 1, "WETH": 10 * 10**18},
        "WETH",
        "USDX",
        MAX,
    )
    add(
        "bad_debt_becomes_deficit",
        f"{liq}::test_deficit_increased_after_liquidate_bad_debt "
        "(and test_liquidate_borrow_bad_debt), without the 30-day warp",
        priced("WBTC", 2000),
        {"WBTC": 5 * 10**7},
        {"USDX": 11000 * 10**6},
        "WBTC",
        "USDX",
        MAX,
    )
    add(
        "deficit_on_every_debt_reserve",
        f"{liq}::test_liquidate_borrow_burn_multiple_assets_bad_debt, without the warps",
        priced("WBTC", 2150),
        {"WBTC": 100999999},
        {"USDX": 20500999999, "WETH": 2 * 10**5, "WBTC": 2 * 10**5},
        "WBTC",
        "USDX",
        MAX,
    )
    add(
        "hf_above_one_reverts",
        f"{liq}::test_reverts_liquidation_hf_gt_liquidation_threshold",
        r,
        {"WBTC": 10**8},
        {"WETH": 2 * 10**18},
        "WBTC",
        "WETH",
        10**18,
    )

    for name, test, supply, hf, factor in (
        (
            "close_factor_100_below_095",
            "test_hf_lte_095_supply_gt_threshold_closeFactorShouldBe100",
            100 * 10**18,
            94 * 10**16,
            "100%",
        ),
        (
            "close_factor_100_small_collateral",
            "test_hf_gt_095_supply_lt_threshold_closeFactorShouldBe100",
            5 * 10**17,
            97 * 10**16,
            "100%",
        ),
        (
            "close_factor_50",
            "test_hf_gt_095_supply_gt_threshold_closeFactorShouldBe50",
            100 * 10**18,
            97 * 10**16,
            "50%",
        ),
    ):
        coll = {"WETH": supply}
        debt = borrow_to_hf(r, coll, {}, "USDX", hf)
        add(name, f"{cf}::{test} (close factor {factor})", r, coll, debt, "WETH", "USDX", MAX)

    weth_lt = (MIN_BASE - 10**8) * 10**18 // r["WETH"]["price"]
    coll = {"USDX": (MIN_BASE - 10**8) // 100, "WETH": weth_lt}
    debt = borrow_to_hf(r, coll, {}, "USDX", 97 * 10**16)
    add(
        "close_factor_100_collateral_reserve_below_threshold",
        f"{cf}::test_hf_gt_095_borrow_gt_threshold_collateral_lt_threshold_closeFactorShouldBe100",
        r,
        coll,
        debt,
        "WETH",
        "USDX",
        MAX,
    )

    coll = {"USDX": MIN_BASE // 100, "WETH": 4 * 10**18}
    debt = borrow_to_hf(r, coll, {}, "USDX", 93 * 10**16)
    add(
        "dust_leftover_collateral_reverts",
        f"{cf}::test_shouldRevertIfCloseFactorIs100ButCollateralIsBelowThreshold",
        r,
        coll,
        debt,
        "USDX",
        "USDX",
        (MIN_BASE // 100) // 2 - 44 * 10**6,
    )

    coll = {"USDX": 8000 * 10**6}
    debt = borrow_to_hf(r, coll, {"USDX": 4200 * 10**6}, "WETH", 98 * 10**16)
    add(
        "dust_leftover_debt_reverts_at_max",
        f"{cf}::test_liquidationdataprovider_edge_range",
        r,
        coll,
        debt,
        "USDX",
        "USDX",
        MAX,
    )
    add(
        "data_provider_amount_passes",
        f"{cf}::test_liquidationdataprovider_edge_range",
        r,
        coll,
        debt,
        "USDX",
        "USDX",
        MAX,
        provider=True,
    )

    coll = {"USDX": 4200 * 10**6, "WETH": 4000 * 10**8 * 10**18 // r["WETH"]["price"]}
    debt = borrow_to_hf(r, coll, {}, "USDX", 98 * 10**16)
    add(
        "dust_reverse_reverts_at_max",
        f"{cf}::test_liquidationdataprovider_edge_range_reverse",
        r,
        coll,
        debt,
        "USDX",
        "USDX",
        MAX,
    )
    add(
        "data_provider_amount_passes_reverse",
        f"{cf}::test_liquidationdataprovider_edge_range_reverse",
        r,
        coll,
        debt,
        "USDX",
        "USDX",
        MAX,
        provider=True,
    )
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("vectors.json")
    path.write_text(json.dumps(scenarios(), indent=1) + "\n")
    print(f"wrote {path}")
