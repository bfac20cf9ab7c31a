# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""A day's trades classified against the day's NBBO deltas in bounded memory.

The result equals :func:`market_assets.core.classify.classify_table` on the whole day (same
rows, same order, same columns) without holding the day's quotes, in two streamed passes:

1. **Join** (:meth:`DayClassifier.join`): the trades (ticker rank, SIP time, row)
   put in ticker order, merged with the quotes in ticker order (the order of the flat
   files and of the stored deltas). For each quote batch the trades of its tickers look up
   the NBBO in force in that batch; a ticker whose quotes span batches keeps the latest
   found by (SIP time, sequence number), the later batch winning a tie, which is what one
   index over the whole day gives. Once the quotes are past a ticker, its trades (all of
   them: the trades are in ticker order) are emitted as numeric rows (the NBBO in force,
   the previous trade's price for the tick rule) bound for their row; the ticker's own
   adaptive limit is recorded by rank and the ages go into a per-kind histogram (whole
   microseconds, the resolution of the limit) for the pooled limit.
2. **Decide** (:meth:`DayClassifier.decide`): the trades again in day order beside the
   joined rows put back in row order: the rules (:func:`market_assets.core.classify.decide`)
   with the final limits (a ticker's own, or its kind's pooled one).

Both reorderings are permutations known in advance (a counting sort: the day's count per
ticker gives each trade its place in ticker order; the join's rows go back to their row),
done by the caller's ``permute`` (in memory here; bucket files on disk in the asset), so
memory holds a quote batch, the trades of its tickers and the permutation's buffers. Only
numbers are reordered: the quotes' tickers are matched by run (they are in ticker order)
and the trades' by the rank of their ticker among the day's, never row by row as strings.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.core.classify import (
    ClassifyParams,
    Nbbo,
    QuoteIndex,
    Staleness,
    TradeInputs,
    _array,
    _floats,
    _ns,
    _previous_prices,
    age_cap_ns,
    bad_trades,
    decide,
    own_limits_us,
)
from market_assets.core.ticks import option_tickers

TRADE_COLUMNS = ["ticker", "sip_timestamp", "price"]
_VALUES = ("bid", "bid_size", "ask", "ask_size")
BAD_TS = np.iinfo(np.int64).min  # a bad trade's time in the join (rule 1: never classified)
OUT_ROWS = 65_536  # rows per chunk handed out by the in-memory permutation

Batches = Iterable[pa.RecordBatch | pa.Table]
Scan = Callable[[list[str] | None], Batches]
Columns = dict[str, np.ndarray]
# ``permute(chunks, n)``: chunks of (destination positions, columns) covering 0..n-1 once;
# yields the columns in destination order, consecutive chunks from position 0.
Permuter = Callable[[Iterable[tuple[np.ndarray, Columns]], int], Iterable[Columns]]


class NotInTickerOrder(ValueError):
    """A stream the join needs in ticker order is not."""


def permute_in_memory(chunks: Iterable[tuple[np.ndarray, Columns]], n: int) -> Iterator[Columns]:
    """The permutation in memory (tests, small days)."""
    out: Columns | None = None
    rows = 0
    filled = np.zeros(n, bool)
    for dest, cols in chunks:
        if out is None:
            out = {k: np.empty(n, v.dtype) for k, v in cols.items()}
        for k, v in cols.items():
            out[k][dest] = v
        filled[dest] = True
        rows += len(dest)
    if rows != n:
        raise ValueError(f"{rows:,} rows to put in order, expected {n:,}")
    if out is None:
        return
    if not filled.all():
        raise ValueError(
            f"position {int(np.argmin(filled)):,} got no row (another got two): the "
            "destinations are not a permutation"
        )
    for start in range(0, n, OUT_ROWS):
        yield {k: v[start : start + OUT_ROWS] for k, v in out.items()}


def concat_columns(parts: list[Columns]) -> Columns:
    """Column-wise concatenation of column dicts with the same keys."""
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def slice_columns(cols: Columns, start: int, stop: int | None = None) -> Columns:
    """Rows ``start:stop`` of every column."""
    return {k: v[start:stop] for k, v in cols.items()}


def _rows(cols: Columns) -> int:
    return len(next(iter(cols.values()))) if cols else 0


class DayTickers:
    """The day's distinct trade tickers in ascending order, their trade counts and the
    null-ticker count: a trade's rank (its ticker's position; nulls last) orders by ticker."""

    def __init__(self, batches: Batches) -> None:
        names: list[pa.Array] = [pa.array([], pa.string())]
        counts: list[np.ndarray] = [np.zeros(0, np.int64)]
        held = nulls = 0
        for batch in batches:
            col = _array(batch, "ticker").cast(pa.string())
            nulls += col.null_count
            vc = pc.value_counts(col.drop_null() if col.null_count else col)
            names.append(vc.field(0))
            counts.append(np.asarray(vc.field(1).to_numpy(zero_copy_only=False), np.int64))
            held += len(vc)
            if held > 1_000_000:  # fold: memory holds about the distinct tickers
                names, counts = _summed(names, counts)
                held = len(names[0])
        [array], [summed] = _summed(names, counts)
        order = pc.sort_indices(array)
        self.array = array.take(order)
        self.names: list[str] = self.array.to_pylist()
        self._sorted = np.array(self.names, dtype=str) if self.names else np.array([], str)
        self.counts = np.append(summed[order.to_numpy()], nulls).astype(np.int64)
        self.rows = int(self.counts.sum())
        self.is_option = np.append(option_tickers(self.array), False)

    hash_below = 100_000  # up to this many tickers a lookup hashes them; else binary search

    def __len__(self) -> int:
        return len(self.names)

    def lookup(self, dictionary: pa.Array) -> np.ndarray:
        """The rank of each of these distinct tickers (-1: not of the day), then
        ``len(self)`` (index it with -1 for a null)."""
        if len(self) <= self.hash_below:  # a hash set of the day's tickers is cheap to build
            at = pc.index_in(dictionary, value_set=self.array).fill_null(-1)
            return np.append(np.asarray(at.to_numpy(zero_copy_only=False), np.int64), len(self))
        names = np.asarray(dictionary.to_pylist(), dtype=str)
        if not len(self):
            return np.append(np.full(len(names), -1, np.int64), 0)
        at = np.minimum(np.searchsorted(self._sorted, names), len(self) - 1)
        return np.append(np.where(self._sorted[at] == names, at, -1), len(self)).astype(np.int64)

    def ranks(self, tickers: pa.Array) -> np.ndarray:
        """Each row's rank; ``len(self)`` for a null; -1 for a ticker not of the day."""
        encoded = pc.dictionary_encode(tickers.cast(pa.string()))
        codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
        return self.lookup(encoded.dictionary)[codes]

    def bound(self, ticker: str, *, inclusive: bool) -> int:
        """Ranks below the result have tickers < ``ticker`` (<= when ``inclusive``)."""
        if inclusive:
            return bisect.bisect_right(self.names, ticker)
        return bisect.bisect_left(self.names, ticker)


def _summed(
    names: list[pa.Array], counts: list[np.ndarray]
) -> tuple[list[pa.Array], list[np.ndarray]]:
    """The counts of equal names added up (one array each)."""
    encoded = pc.dictionary_encode(pa.concat_arrays(names))
    idx = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
    total = np.bincount(idx, np.concatenate(counts), minlength=len(encoded.dictionary))
    return [encoded.dictionary], [total.astype(np.int64)]


def numbered(
    batches: Batches, day: DayTickers, prices: bool = False
) -> Iterator[tuple[np.ndarray, Columns]]:
    """The join's trade columns (``row``: the position in the day, ``ts``: ``BAD_TS`` for
    a bad trade, ``price`` when ``prices``: the tick rule's) of each batch with its place
    in ticker order (stable: a ticker's trades keep their row order; the place gives the
    rank, see :class:`_TradeFeed`)."""
    start = np.concatenate(([0], np.cumsum(day.counts)[:-1]))  # each rank's first place
    seen = np.zeros(len(day.counts), np.int64)
    row = 0
    row_type = np.int32 if day.rows < 2**31 else np.int64
    for batch in batches:
        n = batch.num_rows
        if not n:
            continue
        rank = day.ranks(_array(batch, "ticker"))
        if (rank < 0).any():
            raise ValueError("the trades changed between the passes (a ticker not seen before)")
        packed = np.sort(rank * n + np.arange(n))  # by rank, then row: stable
        order, r = packed % n, packed // n
        first = np.flatnonzero(np.concatenate(([True], r[1:] != r[:-1])))
        size = np.diff(np.append(first, n))
        within = np.arange(n) - np.repeat(first, size)
        dest = np.empty(n, np.int64)
        dest[order] = start[r] + seen[r] + within
        seen[r[first]] += size
        if (seen > day.counts).any():
            raise ValueError("the trades changed between the passes (more rows than counted)")
        ts, ts_ok = _ns(_array(batch, "sip_timestamp"))
        price = _floats(_array(batch, "price"))
        bad = bad_trades(ts_ok, price, rank == len(day))
        cols = {"row": np.arange(row, row + n, dtype=row_type), "ts": np.where(bad, BAD_TS, ts)}
        if prices:
            cols["price"] = price
        yield dest, cols
        row += n
    if row != day.rows:
        raise ValueError(
            f"the trades changed between the passes: {row:,} rows, {day.rows:,} counted"
        )


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


class _TradeFeed:
    """The numbered trades in ticker order (their place gives their ``rank``; ``bad``:
    the rows the rules call bad trades), handed out up to a rank."""

    def __init__(self, chunks: Iterable[Columns], day: DayTickers) -> None:
        self._it = iter(chunks)
        self._head: Columns | None = None
        self._ends = np.cumsum(day.counts)  # one past each rank's last place
        self._null_rank = len(day)
        self._place = 0

    def _next(self) -> Columns | None:
        for cols in self._it:
            n = _rows(cols)
            if n:
                lo, hi = self._place, self._place + n
                self._place = hi
                first = int(np.searchsorted(self._ends, lo, side="right"))
                last = int(np.searchsorted(self._ends, hi - 1, side="right"))
                cut = np.clip(self._ends[first : last + 1], lo, hi)
                rank = np.repeat(np.arange(first, last + 1), np.diff(np.append(lo, cut)))
                bad = (cols["ts"] == BAD_TS) | (rank == self._null_rank)
                return {**cols, "rank": rank, "bad": bad}
        return None

    def below(self, bound: int | None, limit: int | None = None) -> Columns | None:
        """The trades with rank < ``bound`` (every one left when None) not handed out yet;
        with ``limit``, about that many: up to the end of the ticker of the limit-th trade
        (a ticker's trades are never split, its previous prices depend on them all)."""
        parts, got, capped = [], 0, False
        while True:
            head = self._head if self._head is not None else self._next()
            self._head = None
            if head is None:
                break
            ranks = head["rank"]
            if limit is not None and not capped and got + len(ranks) >= limit:
                tail = int(ranks[max(limit - got, 1) - 1]) + 1
                bound, capped = tail if bound is None else min(bound, tail), True
            n = len(ranks) if bound is None else int(np.searchsorted(ranks, bound, side="left"))
            if n:
                parts.append(head if n == len(ranks) else slice_columns(head, 0, n))
                got += n
            if n < len(ranks):
                self._head = slice_columns(head, n)
                break
        return concat_columns(parts) if parts else None


def _fresh(n: int) -> Columns:
    return {
        "found": np.zeros(n, bool),
        "ts": np.zeros(n, np.int64),
        "seq": np.zeros(n, np.int64),
        "state": np.full(n, -1, np.int8),
        **{v: np.full(n, np.nan) for v in _VALUES},
    }


class DayClassifier:
    """The two passes of a day's classification (see the module docstring)."""

    def __init__(self, params: ClassifyParams | None = None) -> None:
        self.params = params or ClassifyParams()
        self._own = np.zeros(0, np.int64)  # per rank, -1: none (pooled)
        self._day: DayTickers | None = None
        self._hist = {
            True: _AgeHistogram(self.params.option_staleness),
            False: _AgeHistogram(self.params.equity_staleness),
        }
        self._joined = False
        self.quote_rows = 0
        self.trade_rows = 0

    # -- pass 1 ---------------------------------------------------------------------------
    def join(
        self, trades: Iterable[Columns], quotes: Batches, day: DayTickers
    ) -> Iterator[tuple[np.ndarray, Columns]]:
        """``trades``: :func:`numbered` columns in ticker order; ``quotes``: NBBO rows
        (ticker, sip_timestamp, bid/ask price and size, optional sequence_number) in ticker
        order. Yields the joined columns of each finished ticker with their rows."""
        self._own = np.full(len(day) + 1, -1, np.int64)
        self._day = day
        feed = _TradeFeed(trades, day)
        pending: Columns | None = None
        best: Columns = _fresh(0)
        last_quote: str | None = None

        def finish_below(bound: int | None) -> Iterator[tuple[np.ndarray, Columns]]:
            """Emit the trades of tickers ranked below ``bound`` (all when None): no quote
            can come for them any more. Those never quoted go a few tickers at a time, so a
            day whose quotes cover some tickers only never holds the others' trades."""
            nonlocal pending, best
            if pending is not None and len(pending["rank"]):
                ranks = pending["rank"]
                done = len(ranks) if bound is None else int(np.searchsorted(ranks, bound))
                if done:
                    yield self._emit(
                        slice_columns(pending, 0, done), slice_columns(best, 0, done), day
                    )
                    pending, best = slice_columns(pending, done), slice_columns(best, done)
                if len(pending["rank"]):
                    return  # the feed is past ``bound`` too
            while (chunk := feed.below(bound, OUT_ROWS)) is not None:
                yield self._emit(chunk, _fresh(_rows(chunk)), day)

        for qbatch in quotes:
            runs = _ticker_runs(_array(qbatch, "ticker"), last_quote)
            if runs is None:
                continue
            names, starts, valid = runs
            yield from finish_below(day.bound(names[0], inclusive=False))
            last_quote = names[-1]
            self.quote_rows += qbatch.num_rows
            ranks = np.array([day.bound(x, inclusive=False) for x in names], np.int64)
            known = np.array(
                [r < len(day) and day.names[r] == x for r, x in zip(ranks, names, strict=True)]
            )
            ranks = np.where(known, ranks, -1)
            lengths = np.diff(np.append(starts, valid))
            codes = np.full(qbatch.num_rows, -1, np.int64)
            codes[:valid] = np.repeat(ranks, lengths)
            index = QuoteIndex(qbatch, day.array, codes)
            if pending is not None:  # the last ticker of the previous batch, continued here
                _update(best, pending, index)
            # The trades of this batch's tickers (and of the unquoted ones between them), a
            # few whole tickers at a time: those before the batch's last ticker are done.
            done_below = day.bound(last_quote, inclusive=False)
            upto = day.bound(last_quote, inclusive=True)
            while True:
                pulled = feed.below(upto, OUT_ROWS)
                if pulled is not None:
                    found = _fresh(_rows(pulled))
                    _update(found, pulled, index)
                    pending, best = _joined(pending, best, pulled, found)
                if pending is not None:
                    done = int(np.searchsorted(pending["rank"], done_below))
                    if done:
                        head = slice_columns(pending, 0, done), slice_columns(best, 0, done)
                        yield self._emit(*head, day)
                        pending, best = slice_columns(pending, done), slice_columns(best, done)
                if pulled is None:
                    break
        yield from finish_below(None)
        self._joined = True

    def _emit(self, trades: Columns, best: Columns, day: DayTickers) -> tuple[np.ndarray, Columns]:
        """The joined rows of tickers whose quotes are all seen (all their trades present)."""
        rank, ts, bad = trades["rank"], trades["ts"], trades["bad"]
        has = best["found"] & ~bad
        age = np.where(has, ts - best["ts"], 0)
        is_option = day.is_option[rank]
        for option, policy in (
            (True, self.params.option_staleness),
            (False, self.params.equity_staleness),
        ):
            m = has & (is_option == option)
            if not policy.adaptive or not m.any():
                continue
            ids, limits = own_limits_us(rank[m], age[m], policy)
            self._own[ids] = limits
            self._hist[option].add(age[m])
        self.trade_rows += len(ts)
        cols = {v: np.where(has, best[v], np.nan) for v in _VALUES}
        cols["nbbo_ts"] = np.where(has, best["ts"], 0)
        cols["state"] = np.where(has, best["state"], -1).astype(np.int8)  # -1: no NBBO
        if self.params.tick_rule_fallback:
            cols["prev"] = _previous_prices(rank, ts, trades["price"], ~bad, None)
        return trades["row"], cols

    @property
    def own_limit_count(self) -> int:
        """Tickers judged with their own adaptive limit (enough ages of their own)."""
        return int((self._own >= 0).sum())

    # -- pass 2 ---------------------------------------------------------------------------
    def pooled_limits_us(self) -> dict[bool, int]:
        """The pooled adaptive limit per kind (True: options), once the join is done."""
        return {kind: h.limit_us() for kind, h in self._hist.items()}

    def decide(self, trades: Batches, joined: Iterable[Columns]) -> Iterator[pa.Table]:
        """``trades`` (the day's rows in their order, any columns with ticker,
        sip_timestamp, price) with ``CLASSIFICATION_COLUMNS`` appended; ``joined``: the
        :meth:`join` output put in row order."""
        rows = _Rows(joined)
        rows.prime()  # a permutation consumes the whole join before its first row
        if not self._joined or self._day is None:
            raise RuntimeError("decide() needs the whole join consumed first")
        pooled = self.pooled_limits_us()
        start = 0
        for batch in trades:
            n = batch.num_rows
            j = rows.take(n)
            if _rows(j) != n:
                raise ValueError(f"fewer joined rows than the trade rows ({start + n:,}+)")
            start += n
            t = TradeInputs.of(batch, self.params)
            own = np.append(self._own[self._day.lookup(t.tickers)], -1)[t.code]
            limits = np.where(own >= 0, own, np.where(t.is_option, pooled[True], pooled[False]))
            state = j["state"].astype(np.int64)
            nbbo = Nbbo(
                state >= 0,
                j["bid"],
                j["bid_size"],
                j["ask"],
                j["ask_size"],
                j["nbbo_ts"],
                state,
            )
            prev = j["prev"] if self.params.tick_rule_fallback else None
            cols = decide(t, nbbo, self.params, limits, prev)
            out = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            for f in cols.schema:
                out = out.append_column(f, cols.column(f.name))
            yield out
        if _rows(rows.take(1)):
            raise ValueError(f"more joined rows than the {start:,} trade rows")


def _ticker_runs(
    tickers: pa.Array | pa.ChunkedArray, after: str | None
) -> tuple[list[str], np.ndarray, int] | None:
    """The runs of equal tickers of a quote batch in ticker order: their names, first rows
    and the count of rows with a ticker (nulls only last); None when it has none. Raises
    :class:`NotInTickerOrder` unless the names ascend from ``after``."""
    if isinstance(tickers, pa.ChunkedArray):
        tickers = tickers.combine_chunks() if tickers.num_chunks else pa.array([], pa.string())
    tickers = tickers.cast(pa.string())
    n = len(tickers)
    valid = n - tickers.null_count
    if valid == 0:
        return None
    if tickers.null_count:
        ok = np.asarray(tickers.is_valid().to_numpy(zero_copy_only=False), bool)
        if not ok[:valid].all():
            first_null = int(np.flatnonzero(~ok)[0])
            later = tickers.slice(first_null).drop_null()[0]
            raise NotInTickerOrder(f"quotes are not in ticker order: a null ticker before {later}")
        tickers = tickers.slice(0, valid)
    if valid > 1:
        change = pc.not_equal(tickers.slice(1), tickers.slice(0, valid - 1))
        starts = np.concatenate(([0], np.flatnonzero(change.to_numpy(zero_copy_only=False)) + 1))
    else:
        starts = np.zeros(1, np.int64)
    names = tickers.take(pa.array(starts)).to_pylist()
    previous = after
    for name in names:
        if previous is not None and name < previous:
            raise NotInTickerOrder(f"quotes are not in ticker order: {name} after {previous}")
        previous = name
    return names, starts, valid


class _Rows:
    """Column chunks handed out ``n`` rows at a time."""

    def __init__(self, chunks: Iterable[Columns]) -> None:
        self._it = iter(chunks)
        self._buf: list[Columns] = []
        self._n = 0

    def prime(self) -> None:
        """Read the first chunk."""
        self._fill(1)

    def _fill(self, n: int) -> None:
        while self._n < n:
            c = next(self._it, None)
            if c is None:
                break
            self._buf.append(c)
            self._n += _rows(c)

    def take(self, n: int) -> Columns:
        self._fill(n)
        parts, got = [], 0
        while self._buf and got < n:
            c = self._buf.pop(0)
            m = _rows(c)
            if got + m > n:  # split: the rest stays first in line
                self._buf.insert(0, slice_columns(c, n - got))
                c, m = slice_columns(c, 0, n - got), n - got
            parts.append(c)
            got += m
        self._n -= got
        return concat_columns(parts) if parts else {}


def _joined(
    pending: Columns | None, best: Columns, more: Columns, more_best: Columns
) -> tuple[Columns, Columns]:
    """``more`` trades (and their NBBO found so far) after the pending ones."""
    if pending is None or not _rows(pending):
        return more, more_best
    return concat_columns([pending, more]), concat_columns([best, more_best])


def _update(best: Columns, trades: Columns, index: QuoteIndex) -> None:
    """Keep, per trade, the NBBO in force found so far (a later batch wins a tie)."""
    pos = index.asof_codes(trades["rank"], trades["ts"])
    pos[trades["bad"]] = -1
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
    permute: Permuter = permute_in_memory,
    classifier: DayClassifier | None = None,
) -> Iterator[pa.Table]:
    """The day's trades with ``CLASSIFICATION_COLUMNS`` appended, in their order.

    ``scan(columns)`` returns the day's trades (those columns; None: all) in the same
    order every call; ``quotes``: NBBO rows in ticker order; ``permute(chunks, n)``: the
    columns put at their positions (pass one on disk for bounded memory).
    """
    clf = classifier or DayClassifier(params)
    day = DayTickers(scan(["ticker"]))
    prices = clf.params.tick_rule_fallback
    by_ticker = permute(numbered(scan(TRADE_COLUMNS), day, prices), day.rows)
    by_row = permute(clf.join(by_ticker, quotes, day), day.rows)
    yield from clf.decide(scan(None), by_row)
