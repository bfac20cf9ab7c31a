# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""A day's trades classified against the day's NBBO deltas in bounded memory.

The result equals :func:`market_assets.core.classify.classify_table` on the whole day (same
rows, same order, same columns) without holding the day's quotes, in two streamed passes:

1. **Join** (:meth:`DayClassifier.join`): the trades, numbered with their row in the day
   (``ROW``) and sorted by ticker, merged with the quotes in ticker order (the order of the
   flat files and of the stored deltas). For each quote batch the trades of its tickers
   look up the NBBO in force in that batch; a ticker whose quotes span batches keeps the
   latest found by (SIP time, sequence number), the later batch winning a tie, which is
   what one index over the whole day gives. Once the quotes are past a ticker, its trades
   (all of them: the trades are in ticker order) are emitted as narrow rows (row, the NBBO
   in force, the previous trade's price for the tick rule); the ticker's own adaptive
   limit is recorded and its ages go into a per-kind histogram (whole microseconds, the
   resolution of the limit) for the pooled limit.
2. **Decide** (:meth:`DayClassifier.decide`): the trades again in day order beside the
   joined rows put back in row order: the rules (:func:`market_assets.core.classify.decide`)
   with the final limits (a ticker's own, or its kind's pooled one).

Between the two the caller sorts (``sort``: in memory here, an external merge sort in the
asset), so memory holds a quote batch, the trades of its tickers and the sorts' buffers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.classify import (
    ClassifyParams,
    Nbbo,
    QuoteIndex,
    Staleness,
    TradeInputs,
    _filled,
    _previous_prices,
    age_cap_ns,
    decide,
    own_limits_us,
)
from market_assets.core.schemas import TS

ROW = "_row"
RANK = "_ticker_rank"  # the ticker's rank among the day's tickers: an integer sort key
TRADE_COLUMNS = ["ticker", "sip_timestamp", "price"]
NARROW_TRADES = pa.schema(
    [
        ("ticker", pa.string()),
        ("sip_timestamp", TS),
        ("price", pa.float64()),
        (ROW, pa.int64()),
        (RANK, pa.int32()),
    ]
)
JOINED = pa.schema(
    [
        (ROW, pa.int64()),
        ("nbbo_bid", pa.float64()),
        ("nbbo_bid_size", pa.float64()),
        ("nbbo_ask", pa.float64()),
        ("nbbo_ask_size", pa.float64()),
        ("nbbo_ts", pa.int64()),  # null: no NBBO in force
        ("nbbo_state", pa.int8()),  # core.nbbo state code, -1 without NBBO
        ("prev_price", pa.float64()),  # the tick rule's previous price (NaN: none)
    ]
)
_VALUES = ("bid", "bid_size", "ask", "ask_size")

Batches = Iterable[pa.RecordBatch | pa.Table]
Scan = Callable[[list[str] | None], Batches]
Sorter = Callable[[Iterable[pa.RecordBatch], pa.Schema, Sequence[str]], Iterable[pa.RecordBatch]]


class NotInTickerOrder(ValueError):
    """A stream the join needs in ticker order is not."""


def sort_in_memory(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, keys: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    """A stable sort of the whole stream in memory (tests, small days)."""
    table = pa.Table.from_batches(list(batches), schema=schema)
    yield from table.sort_by([(k, "ascending") for k in keys]).to_batches()


def day_tickers(batches: Batches) -> pa.Array:
    """The distinct tickers of a stream of ``ticker`` batches, in ascending order."""
    seen: set[str] = set()
    for batch in batches:
        seen.update(pc.unique(batch.column("ticker")).drop_null().to_pylist())
    return pa.array(sorted(seen), pa.string())


def numbered(
    batches: Batches, tickers: pa.Array, columns: Sequence[str] = TRADE_COLUMNS
) -> Iterator[pa.RecordBatch]:
    """``columns`` of each batch with ``ROW`` (the row's position in the whole stream) and
    ``RANK`` (its ticker's position in ``tickers``, the sorted distinct tickers: sorting
    by it is sorting by ticker, on integers)."""
    start = 0
    for batch in batches:
        n = batch.num_rows
        cols = [batch.column(c) for c in columns]
        cols.append(pa.array(np.arange(start, start + n, dtype=np.int64)))
        cols.append(pc.index_in(batch.column("ticker"), value_set=tickers).cast(pa.int32()))
        table = pa.Table.from_arrays(cols, names=[*columns, ROW, RANK])
        yield from table.cast(NARROW_TRADES).to_batches()
        start += n


class _AgeHistogram:
    """Counts of ages in whole microseconds (rounded up, capped where only the bound
    matters): its quantile is the pooled adaptive limit, exactly as over the ages."""

    def __init__(self, policy: Staleness) -> None:
        self.policy = policy
        self.cap = age_cap_ns(policy)
        self.counts = np.zeros((self.cap + 999) // 1000 + 1, np.int64)

    def add(self, ages_ns: np.ndarray) -> None:
        us = (np.minimum(ages_ns, self.cap) + 999) // 1000
        self.counts += np.bincount(us, minlength=len(self.counts))

    def limit_us(self) -> int:
        n = int(self.counts.sum())
        if not self.policy.adaptive or n == 0:
            return self.policy.limit_us(None)
        k = math.ceil(self.policy.quantile * (n - 1))
        q_us = int(np.searchsorted(np.cumsum(self.counts), k, side="right"))
        return self.policy.limit_us(q_us * 1000)


def _strings(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    col = col.cast(pa.string())
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks else pa.array([], pa.string())
    return col


def _check_order(tickers: pa.Array, after: str | None, what: str) -> None:
    """Raise unless ``tickers`` (nulls last) ascend and start at or after ``after``."""
    valid = tickers.drop_null()
    if len(valid) and after is not None and valid[0].as_py() < after:
        raise NotInTickerOrder(f"{what} are not in ticker order: {valid[0]} after {after!r}")
    if tickers.null_count and len(valid) and tickers[len(valid) - 1].as_py() is None:
        raise NotInTickerOrder(f"{what} are not in ticker order: a null ticker before {valid[-1]}")
    if len(valid) > 1:
        down = pc.less(valid.slice(1), valid.slice(0, len(valid) - 1))
        if pc.any(down).as_py():
            i = int(np.flatnonzero(down.to_numpy(zero_copy_only=False))[0])
            raise NotInTickerOrder(
                f"{what} are not in ticker order: {valid[i + 1]} after {valid[i]}"
            )


class _TradeFeed:
    """Narrow trades in ticker order, handed out up to a ticker."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._it = iter(batches)
        self._head: pa.Table | None = None
        self._last: str | None = None
        self._last_rank: int | None = None

    def _next(self) -> pa.Table | None:
        for batch in self._it:
            if batch.num_rows:
                table = (
                    pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
                )
                self._check(table)
                return table
        return None

    def _check(self, table: pa.Table) -> None:
        if RANK in table.column_names:  # ranks ascend with the tickers: integers compare fast
            rank = table.column(RANK).combine_chunks()
            r = np.asarray(rank.fill_null(np.iinfo(np.int32).max).to_numpy(zero_copy_only=False))
            last = np.iinfo(np.int32).min if self._last_rank is None else self._last_rank
            if r[0] < last or (np.diff(r) < 0).any():
                raise NotInTickerOrder("trades are not in ticker order (their ranks descend)")
            self._last_rank = int(r[-1])
            return
        tickers = _strings(table.column("ticker"))
        _check_order(tickers, self._last, "trades")
        valid = tickers.drop_null()
        if len(valid):
            self._last = valid[-1].as_py()

    def through(self, last: str | None) -> pa.Table | None:
        """The trades with ticker <= ``last`` (every one left when None) not handed out yet."""
        parts = []
        while True:
            head = self._head if self._head is not None else self._next()
            self._head = None
            if head is None:
                break
            if last is None:
                parts.append(head)
                continue
            n = int(
                pc.sum(pc.fill_null(pc.less_equal(head.column("ticker"), last), False)).as_py() or 0
            )
            parts.append(head.slice(0, n))
            if n < head.num_rows:
                self._head = head.slice(n)
                break
        parts = [p for p in parts if p.num_rows]
        return pa.concat_tables(parts) if parts else None


class DayClassifier:
    """The two passes of a day's classification (see the module docstring)."""

    def __init__(self, params: ClassifyParams | None = None) -> None:
        self.params = params or ClassifyParams()
        self._own: dict[str, int] = {}
        self._hist = {
            True: _AgeHistogram(self.params.option_staleness),
            False: _AgeHistogram(self.params.equity_staleness),
        }
        self._joined = False
        self.quote_rows = 0
        self.trade_rows = 0

    # -- pass 1 ---------------------------------------------------------------------------
    def join(self, trades: Iterable[pa.RecordBatch], quotes: Batches) -> Iterator[pa.RecordBatch]:
        """``trades``: ``NARROW_TRADES`` rows in ticker order (see :func:`numbered`);
        ``quotes``: NBBO rows (ticker, sip_timestamp, bid/ask price and size, optional
        sequence_number) in ticker order. Yields ``JOINED`` rows, a ticker at a time."""
        feed = _TradeFeed(trades)
        pending: pa.Table | None = None
        best: dict[str, np.ndarray] = {}
        last_quote: str | None = None
        for qbatch in quotes:
            tickers = _strings(qbatch.column("ticker"))
            if len(tickers) == tickers.null_count:
                continue
            _check_order(tickers, last_quote, "quotes")
            last_quote = tickers.drop_null()[-1].as_py()
            self.quote_rows += qbatch.num_rows
            pulled = feed.through(last_quote)
            if pulled is not None:
                pending, best = _extend(pending, best, pulled)
            if pending is None:
                continue
            _update(best, pending, QuoteIndex(qbatch), self.params)
            done = int(pc.sum(pc.less(pending.column("ticker"), last_quote)).as_py() or 0)
            if done:
                yield self._emit(pending.slice(0, done), {k: v[:done] for k, v in best.items()})
                pending = pending.slice(done)
                best = {k: v[done:] for k, v in best.items()}
        rest = feed.through(None)
        if rest is not None:
            pending, best = _extend(pending, best, rest)
        if pending is not None and pending.num_rows:
            yield self._emit(pending, best)
        self._joined = True

    def _emit(self, trades: pa.Table, best: dict[str, np.ndarray]) -> pa.RecordBatch:
        """The joined rows of tickers whose quotes are all seen (all their trades present)."""
        t = TradeInputs.of(trades, self.params, ticks=False)
        has = best["found"] & ~t.bad
        age = np.where(has, t.ts - best["ts"], 0)
        for option, policy in (
            (True, self.params.option_staleness),
            (False, self.params.equity_staleness),
        ):
            m = has & (t.is_option == option)
            if not policy.adaptive or not m.any():
                continue
            ids, limits = own_limits_us(t.code[m], age[m], policy)
            names = t.tickers.take(pa.array(ids, pa.int64())).to_pylist()
            self._own.update(zip(names, limits.tolist(), strict=True))
            self._hist[option].add(age[m])
        if self.params.tick_rule_fallback:
            prev = _previous_prices(t.code, t.ts, t.price, ~t.bad, None)
        else:
            prev = np.full(len(t.ts), np.nan)
        self.trade_rows += trades.num_rows

        def values(name: str) -> pa.Array:
            return pa.array(np.where(has, best[name], np.nan), pa.float64(), from_pandas=True)

        return pa.RecordBatch.from_arrays(
            [
                trades.column(ROW).combine_chunks(),
                *(values(v) for v in _VALUES),
                pa.array(best["ts"], pa.int64(), mask=~has),
                pa.array(np.where(has, best["state"], -1).astype(np.int8)),
                pa.array(prev, pa.float64()),
            ],
            schema=JOINED,
        )

    @property
    def own_limit_count(self) -> int:
        """Tickers judged with their own adaptive limit (enough ages of their own)."""
        return len(self._own)

    # -- pass 2 ---------------------------------------------------------------------------
    def pooled_limits_us(self) -> dict[bool, int]:
        """The pooled adaptive limit per kind (True: options), once the join is done."""
        return {kind: h.limit_us() for kind, h in self._hist.items()}

    def decide(self, trades: Batches, joined: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
        """``trades`` (the day's rows in their order, any columns with ticker,
        sip_timestamp, price) with ``CLASSIFICATION_COLUMNS`` appended; ``joined``: the
        :meth:`join` output in ``ROW`` order."""
        rows = _Rows(joined)
        rows.prime()  # a sort consumes the whole join before its first row
        if not self._joined:
            raise RuntimeError("decide() needs the whole join consumed first")
        pooled = self.pooled_limits_us()
        start = 0
        for batch in trades:
            n = batch.num_rows
            j = rows.take(n)
            got = j.column(ROW).to_numpy()
            if not np.array_equal(got, np.arange(start, start + n)):
                raise ValueError(
                    f"joined rows {got[:1].tolist()}... do not line up with trade rows "
                    f"{start}..{start + n - 1}: the trades changed between the passes"
                )
            start += n
            t = TradeInputs.of(batch, self.params)
            own = np.array([self._own.get(x, -1) for x in t.tickers.to_pylist()] + [-1], np.int64)
            limits = own[t.code]
            limits = np.where(
                limits >= 0, limits, np.where(t.is_option, pooled[True], pooled[False])
            )
            ts = j.column("nbbo_ts")
            has = ~np.asarray(ts.is_null().to_numpy(zero_copy_only=False), bool)

            col = _float_columns(j)
            nbbo = Nbbo(
                has,
                col("nbbo_bid"),
                col("nbbo_bid_size"),
                col("nbbo_ask"),
                col("nbbo_ask_size"),
                np.asarray(_filled(ts, 0).to_numpy(zero_copy_only=False), np.int64),
                np.asarray(j.column("nbbo_state").to_numpy(zero_copy_only=False), np.int64),
            )
            prev = col("prev_price") if self.params.tick_rule_fallback else None
            cols = decide(t, nbbo, self.params, limits, prev)
            out = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            for f in cols.schema:
                out = out.append_column(f, cols.column(f.name))
            yield out
        if rows.take(1).num_rows:
            raise ValueError(f"more joined rows than the {start:,} trade rows")


def _float_columns(table: pa.Table) -> Callable[[str], np.ndarray]:
    def col(name: str) -> np.ndarray:
        return np.asarray(table.column(name).to_numpy(zero_copy_only=False), np.float64)

    return col


class _Rows:
    """A batch stream handed out ``n`` rows at a time."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._it = iter(batches)
        self._buf: list[pa.RecordBatch] = []
        self._n = 0

    def prime(self) -> None:
        """Read the first batch."""
        self._fill(1)

    def _fill(self, n: int) -> None:
        while self._n < n:
            b = next(self._it, None)
            if b is None:
                break
            self._buf.append(b)
            self._n += b.num_rows

    def take(self, n: int) -> pa.Table:
        self._fill(n)
        table = pa.Table.from_batches(self._buf, schema=JOINED)
        head, tail = table.slice(0, n), table.slice(n)
        self._buf, self._n = tail.to_batches(), tail.num_rows
        return head


def _extend(
    pending: pa.Table | None, best: dict[str, np.ndarray], more: pa.Table
) -> tuple[pa.Table, dict[str, np.ndarray]]:
    n = more.num_rows
    fresh = {
        "found": np.zeros(n, bool),
        "ts": np.zeros(n, np.int64),
        "seq": np.zeros(n, np.int64),
        "state": np.full(n, -1, np.int8),
        **{v: np.full(n, np.nan) for v in _VALUES},
    }
    if pending is None or not pending.num_rows:
        return more, fresh
    table = pa.concat_tables([pending, more])
    return table, {k: np.concatenate([best[k], fresh[k]]) for k in fresh}


def _update(
    best: dict[str, np.ndarray], trades: pa.Table, index: QuoteIndex, params: ClassifyParams
) -> None:
    """Keep, per trade, the NBBO in force found so far (a later batch wins a tie)."""
    t = TradeInputs.of(trades, params, ticks=False)
    pos = index.asof_codes(np.append(index.codes(t.tickers), -1)[t.code], t.ts)
    pos[t.bad] = -1
    found = pos >= 0
    if not found.any():
        return
    p = pos[found]
    cand_ts, cand_seq = index.ts[p], index.seq[p]
    old = best["found"][found]
    old_ts, old_seq = best["ts"][found], best["seq"][found]
    newer = ~old | (cand_ts > old_ts) | ((cand_ts == old_ts) & (cand_seq >= old_seq))
    rows = np.flatnonzero(found)[newer]
    p = p[newer]
    best["found"][rows] = True
    best["ts"][rows] = index.ts[p]
    best["seq"][rows] = index.seq[p]
    best["state"][rows] = index.state[p]
    for v in _VALUES:
        best[v][rows] = getattr(index, v)[p]


def classify_day(
    scan: Scan,
    quotes: Batches,
    params: ClassifyParams | None = None,
    sort: Sorter = sort_in_memory,
    classifier: DayClassifier | None = None,
) -> Iterator[pa.Table]:
    """The day's trades with ``CLASSIFICATION_COLUMNS`` appended, in their order.

    ``scan(columns)`` returns the day's trades (those columns; None: all) in the same
    order every call; ``quotes``: NBBO rows in ticker order; ``sort(batches, schema,
    keys)``: a stable sort (pass an external one for bounded memory).
    """
    clf = classifier or DayClassifier(params)
    tickers = day_tickers(scan(["ticker"]))
    by_ticker = sort(numbered(scan(TRADE_COLUMNS), tickers), NARROW_TRADES, [RANK])
    by_row = sort(clf.join(by_ticker, quotes), JOINED, [ROW])
    yield from clf.decide(scan(None), by_row)
