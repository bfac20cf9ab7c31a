# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

from importlib import resources

import pyarrow as pa

from market_assets.io.condition_rules import load_condition_rules
from market_assets_tests.config_files import FIXTURES


def _lists(*rows):
    return pa.array(list(rows), pa.list_(pa.int32()))


def test_bundled_rules_are_massives_table():
    bundled = (FIXTURES / "stock_trade_condition_rules.csv").read_text()
    assert (
        bundled == resources.files("market_assets").joinpath("data/condition_rules.csv").read_text()
    )


def _flags(mask) -> str:
    return "".join("T" if v else "." for v in mask)


def test_every_condition_must_pass_and_empty_lists_are_regular_sales():
    rules = load_condition_rules()
    # rows:       []   None [14,41] [12,37] [5]  [2]  [16] [38] [999]
    c = _lists([], None, [14, 41], [12, 37], [5], [2], [16], [38], [999])
    assert _flags(rules.mask(c, "open_close")) == "TTT....T."
    assert _flags(rules.mask(c, "high_low")) == "TTT.T..T."
    assert _flags(rules.mask(c, "volume")) == "TTTTTT..."
    # The greeks' "genuine current price" rule: open/close, or 12/37.
    assert rules.mask(c, "open_close", extra=[12, 37]).tolist()[3] is True


def test_overrides_and_rules_file(tmp_path):
    rules = load_condition_rules(
        overrides=[{"id": 10, "updates_open_close": True}, {"id": 999, "updates_volume": True}]
    )
    c = _lists([10], [999])
    assert rules.mask(c, "open_close").tolist() == [True, False]
    assert rules.mask(c, "volume").tolist() == [True, True]
    f = tmp_path / "rules.csv"
    f.write_text("id,updates_high_low,updates_open_close,updates_volume\n7,true,true,true\n")
    assert load_condition_rules(f).mask(_lists([7], [14]), "open_close").tolist() == [True, False]
