"""The current plan's routes as flat arrays: where a booking would go and what it would push.

Shared by the candidate mask (`moves.generate`), the cost phase's km estimates and the DQN's
features; every time and leg comes from the ride model (`optimizer.ride_model`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from optimizer.feasibility import RouteSchedule, deadlines
from optimizer.insertion_grid import Grid, fits_mask, grid_pairs, kernel_tables
from optimizer.kernels import compiled
from optimizer.problem import BoolArray, FloatArray, IntArray, Problem
from optimizer.ride_model import dropoff_at, leg_tables, pickup_at, tables


class RouteArrays:
    """Every route of the plan as flat arrays (drivers ascending, service order within).

    With each ride's forward slack (Savelsbergh): how long its pickup may slip before a later
    window or the shift end breaks. Inserting a booking pushes the next ride by `push`; the
    route stays on time exactly when `push <= slack` of that next ride, since drivers may wait.
    """

    def __init__(
        self,
        problem: Problem,
        scheds: Sequence[RouteSchedule],
        deadline: FloatArray | None = None,
    ) -> None:
        """`deadline`: latest allowed pickup per booking (default: from `scheds` themselves,
        see `feasibility.deadlines`; the pass hands in the one from its input plan)."""
        p = problem
        self.problem = p
        self._removal: FloatArray | None = None
        self._grid_cache: Grid | None = None
        if compiled is not None and len(scheds) == p.n_drivers:
            self._flatten_compiled(scheds, deadline)
            return
        k = len(scheds)
        drivers: list[int] = []
        bookings: list[int] = []
        pickups: list[float] = []
        dropoffs: list[float] = []
        for d, s in enumerate(scheds):
            if s.bookings:
                drivers += [d] * len(s.bookings)
                bookings += s.bookings
                pickups += s.pickup_at
                dropoffs += s.dropoff_at
        total = len(bookings)
        # A sentinel at the end (driver = K, never matched) keeps every index valid.
        drivers.append(k)
        bookings.append(0)
        pickups.append(0.0)
        dropoffs.append(0.0)
        self.driver = np.array(drivers, dtype=np.int64)
        self.booking = np.array(bookings, dtype=np.int64)
        self.pickup = np.array(pickups)
        self.dropoff = np.array(dropoffs)
        self.size = total
        # Flat index of each assigned booking (the sentinel's for unassigned ones).
        position = [total] * p.n_bookings
        for i in range(total):
            position[bookings[i]] = i
        self.position = np.array(position, dtype=np.int64)
        # A booking already late upstream may stay as late, never later (its deadline).
        self.deadline = deadlines(p, scheds) if deadline is None else deadline
        n1 = p.n_bookings + 1
        order = tables(p).order
        keys = [d * n1 + order[b] for d, b in zip(drivers[:total], bookings, strict=False)]
        keys.append(k * n1)  # the sentinel's
        self.key = np.array(keys, dtype=np.int64)
        self.slack = self._forward_slack((drivers, bookings, pickups, dropoffs))

    def _flatten_compiled(
        self, scheds: Sequence[RouteSchedule], deadline: FloatArray | None
    ) -> None:
        """`__init__`'s arrays by `_kernels.flatten` (the same values; the slack of more than
        48 rides by `_forward_slack_vector`, as `_forward_slack` does)."""
        assert compiled is not None
        p = self.problem
        total = sum([len(s.bookings) for s in scheds])
        ints = np.empty((3, total + 1), dtype=np.int64)
        floats = np.empty((3, total + 1))
        position = np.empty(p.n_bookings, dtype=np.int64)
        self.deadline = deadlines(p, scheds) if deadline is None else deadline
        t = kernel_tables(p)
        small = total <= 48
        compiled.flatten(scheds, p.n_bookings, t.order,
                         np.ascontiguousarray(self.deadline, dtype=np.float64), t.shift_end,
                         t.minutes, small, ints, floats, position)  # fmt: skip
        self.driver, self.booking, self.key = ints
        self.pickup, self.dropoff, slack = floats
        self.position = position
        self.size = total
        self.slack = slack if small else self._forward_slack_vector()

    @property
    def late_ok(self) -> BoolArray:
        """Bookings whose deadline is past window close + tolerance (late upstream)."""
        p = self.problem
        out: BoolArray = self.deadline > p.latest + p.tolerance + 1e-6
        return out

    def _forward_slack(
        self, flat: tuple[list[int], list[int], list[float], list[float]] | None = None
    ) -> FloatArray:
        """How many minutes each ride's pickup may slip before a later window or the shift breaks.

        FS_i = min over later rides j of the same route of (own slack_j + waits between i and j),
        the last ride's own slack also bounded by the shift end. Segmented reverse minimum by
        offsetting each route by a large multiple of its driver index. `flat`: see
        `_forward_slack_small`.
        """
        n = self.size
        if n == 0:
            return np.zeros(1)
        if n <= 48:  # a few rides: the same arithmetic on Python floats is cheaper
            return self._forward_slack_small(flat)
        return self._forward_slack_vector()

    def _forward_slack_vector(self) -> FloatArray:
        p, n = self.problem, self.size
        out = np.zeros(n + 1)
        drv, bk = self.driver[:n], self.booking[:n]
        pick, drop = self.pickup[:n], self.dropoff[:n]
        own = self.deadline[bk] - pick
        same_next = drv[1:] == drv[:-1]
        wait = np.zeros(n)
        between = leg_tables(p)[0][bk[:-1], bk[1:]]  # from each drop-off to the next pickup
        wait[1:] = np.where(same_next, np.maximum(pick[1:] - (drop[:-1] + between), 0.0), 0.0)
        last = np.append(~same_next, True)
        own = np.where(last, np.minimum(own, p.shift_end[drv] - drop), own)
        waited = np.cumsum(wait)
        x = own + waited
        big = 4.0 * (np.abs(x).max() + 1.0)
        shifted = x + drv * big
        rev_min = np.minimum.accumulate(shifted[::-1])[::-1] - drv * big
        out[:n] = rev_min - waited
        return out

    def _forward_slack_small(
        self, flat: tuple[list[int], list[int], list[float], list[float]] | None = None
    ) -> FloatArray:
        """`_forward_slack`, ride by ride (the same operations in the same order). `flat`: the
        driver, booking, pickup and drop-off arrays as lists (sentinel included) when the
        caller has them."""
        p, n = self.problem, self.size
        if compiled is not None:  # the same loop, compiled (`optimizer.kernels`)
            t = kernel_tables(p)
            out_c = np.zeros(n + 1)
            deadline_c = np.ascontiguousarray(self.deadline, dtype=np.float64)
            compiled.forward_slack(p.n_bookings, p.n_drivers, self.driver, self.booking,
                                   self.pickup, self.dropoff, deadline_c, t.shift_end,
                                   t.minutes, out_c)  # fmt: skip
            return out_c
        if flat is None:
            flat = (
                self.driver.tolist(),
                self.booking.tolist(),
                self.pickup.tolist(),
                self.dropoff.tolist(),
            )
        drivers, bookings, pickups, dropoffs = flat
        deadline, shift_end = self.deadline.tolist(), tables(p).shift_end
        minutes = leg_tables(p)[0]
        waited = [0.0] * n
        x = [0.0] * n
        total = 0.0
        for i in range(n):
            d, b = drivers[i], bookings[i]
            own = deadline[b] - pickups[i]
            if i and drivers[i - 1] == d:
                arrive = dropoffs[i - 1] + minutes.item(bookings[i - 1], b)
                total += max(pickups[i] - arrive, 0.0)
            else:
                total += 0.0
            if drivers[i + 1] != d:  # the last ride of its route (the sentinel ends the last)
                own = min(own, shift_end[d] - dropoffs[i])
            waited[i] = total
            x[i] = own + total
        big = 4.0 * (max(abs(v) for v in x) + 1.0)
        out = [0.0] * (n + 1)
        low = float("inf")
        for i in range(n - 1, -1, -1):
            low = min(low, x[i] + drivers[i] * big)
            out[i] = (low - drivers[i] * big) - waited[i]
        return np.asarray(out, dtype=float)

    def neighbours(
        self, b: IntArray, d: IntArray, skip: IntArray | None = None
    ) -> tuple[IntArray, BoolArray, IntArray, BoolArray]:
        """Where booking `b` would sit in driver `d`'s route (ignoring `skip`, which leaves it):
        flat indices of its predecessor and successor, and whether each exists."""
        p = self.problem
        n1 = p.n_bookings + 1
        last = len(self.driver) - 1
        idx = np.searchsorted(self.key, d * n1 + p.order[b])
        pred = np.maximum(idx - 1, 0)
        pred_ok = (idx >= 1) & (self.driver[pred] == d)
        succ = np.minimum(idx, last)
        succ_ok = self.driver[succ] == d
        if skip is not None:  # `skip` leaves d's route: step over it on either side
            drop_skip = pred_ok & (self.booking[pred] == skip)
            pred = np.where(drop_skip, np.maximum(pred - 1, 0), pred)  # pred - 1 <= last
            pred_ok &= ~drop_skip | ((idx - 2 >= 0) & (self.driver[pred] == d))
            drop_skip = succ_ok & (self.booking[succ] == skip)
            succ = np.where(drop_skip, np.minimum(succ + 1, last), succ)  # succ + 1 >= 0
            succ_ok &= self.driver[succ] == d
        return pred, pred_ok, succ, succ_ok

    def km_removal(self, b: IntArray) -> FloatArray:
        """Empty km saved by taking booking `b` out of its route (legs in minus the bridge)."""
        if self._removal is None:  # every assigned booking's at once: callers ask repeatedly
            table = np.zeros(self.problem.n_bookings)
            assigned = self.booking[: self.size]
            table[assigned] = self._km_removal(assigned)
            self._removal = table
        out: FloatArray = self._removal[b]
        return out

    def _km_removal(self, b: IntArray) -> FloatArray:
        p = self.problem
        km = leg_tables(p)[1]
        pos = self.position[b]
        drv = self.driver[pos]
        prev = np.maximum(pos - 1, 0)
        # The leg into b: from the previous ride's drop-off, else from the start (`leg_tables`).
        row = np.where(
            (pos >= 1) & (self.driver[prev] == drv), self.booking[prev], p.n_bookings + drv
        )
        q_ok = self.driver[pos + 1] == drv
        qb = self.booking[pos + 1]
        into = km[row, b]
        out = np.where(q_ok, km[b, qb], 0.0)
        bridge = np.where(q_ok, km[row, qb], 0.0)
        saved: FloatArray = into + out - bridge
        return saved

    def km_insertion(self, b: IntArray, d: IntArray, skip: IntArray | None = None) -> FloatArray:
        """Empty km added by inserting booking `b` into driver `d`'s route (without `skip`)."""
        grid = self._grid()
        if grid is None:
            return self._km_insertion(b, d, skip)
        out: FloatArray = grid.km[b, d]
        if skip is not None:
            rows = np.nonzero(skip >= 0)[0]
            if len(rows):
                out[rows] = self._km_insertion(b[rows], d[rows], skip[rows])
        return out

    def _km_insertion(self, b: IntArray, d: IntArray, skip: IntArray | None = None) -> FloatArray:
        both = self._insert_compiled(b, d, skip)
        if both is not None:
            km: FloatArray = both[4]
            return km
        pred, pred_ok, succ, succ_ok = self.neighbours(b, d, skip)
        row = np.where(pred_ok, self.booking[pred], self.problem.n_bookings + d)
        return self._km_added(b, row, self.booking[succ], succ_ok)

    def _km_added(self, b: IntArray, row: IntArray, sb: IntArray, succ_ok: BoolArray) -> FloatArray:
        """Empty km into `b` from `row` (a drop-off, or a start: see `_km_removal`), plus out to
        the successor `sb`, minus the leg `row` -> `sb` it replaces."""
        km = leg_tables(self.problem)[1]
        into = km[row, b]
        out = np.where(succ_ok, km[b, sb], 0.0)
        bridge = np.where(succ_ok, km[row, sb], 0.0)
        added: FloatArray = into + out - bridge
        return added

    def insertion(
        self, b: IntArray, d: IntArray, skip: IntArray | None = None
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Insert booking `b` into driver `d`'s route (ignoring `skip`, which leaves it).

        Returns, in minutes: the slack left on b's own pickup window, the slack left downstream
        (the next ride's forward slack minus the push, or the shift end when b would be last),
        the empty leg driven to reach b, and the push on the next ride (nan when b would be last).
        """
        grid = self._grid()
        if grid is None:
            return self._insertion(b, d, skip)
        own, downstream = grid.own[b, d], grid.downstream[b, d]
        empty, push = grid.empty[b, d], grid.push[b, d]
        if skip is not None:
            rows = np.nonzero(skip >= 0)[0]
            if len(rows):
                for out, values in zip(
                    (own, downstream, empty, push),
                    self._insertion(b[rows], d[rows], skip[rows]),
                    strict=True,
                ):
                    out[rows] = values
        return own, downstream, empty, push

    def insertion_lists(
        self, b: list[int], d: list[int], skip: list[int]
    ) -> tuple[list[float], list[float], list[float]]:
        """`insertion(b, d, skip)`'s first three arrays as lists, for a few rows: the rows
        without a skip read from the grid's lists, the others computed as `insertion` does."""
        grid = self._grid()
        if grid is None:
            arrays = self.insertion(
                np.asarray(b, dtype=np.int64),
                np.asarray(d, dtype=np.int64),
                np.asarray(skip, dtype=np.int64),
            )
            return arrays[0].tolist(), arrays[1].tolist(), arrays[2].tolist()
        if grid.lists is None:
            grid.lists = (grid.own.tolist(), grid.downstream.tolist(), grid.empty.tolist())
        g_own, g_down, g_empty = grid.lists
        own = [g_own[x][y] for x, y in zip(b, d, strict=True)]
        downstream = [g_down[x][y] for x, y in zip(b, d, strict=True)]
        empty = [g_empty[x][y] for x, y in zip(b, d, strict=True)]
        rows = [i for i, s in enumerate(skip) if s >= 0]
        if rows:
            parts = self._insertion(
                np.asarray([b[i] for i in rows], dtype=np.int64),
                np.asarray([d[i] for i in rows], dtype=np.int64),
                np.asarray([skip[i] for i in rows], dtype=np.int64),
            )
            for out, values in zip((own, downstream, empty), parts, strict=False):
                for i, v in zip(rows, values.tolist(), strict=True):
                    out[i] = v
        return own, downstream, empty

    # Days with at most this many (booking, driver) pairs tabulate every single insertion once
    # per plan: a handful of vectorised calls instead of dozens of tiny ones (same values: the
    # arithmetic is `_insertion`'s and `_km_insertion`'s, elementwise).
    GRID_PAIRS = 4096

    def _grid(self) -> Grid | None:
        """Every booking inserted into every route without skips; None on larger days."""
        if self._grid_cache is None:
            p = self.problem
            n, k = p.n_bookings, p.n_drivers
            if n * k > self.GRID_PAIRS or n * k == 0:
                return None
            if compiled is not None:  # the same arithmetic, compiled (`optimizer.kernels`)
                self._grid_cache = self._grid_compiled()
                return self._grid_cache
            c = p.memo("insertion_grid_pairs", grid_pairs)
            b, d = c.booking, c.driver
            # `neighbours(b, d)`: the query never passes the sentinel, so succ = idx.
            idx = np.searchsorted(self.key, c.query)
            pred = np.maximum(idx - 1, 0)
            pred_ok = (idx >= 1) & (self.driver[pred] == d)
            succ = np.minimum(idx, len(self.driver) - 1)
            succ_ok = self.driver[succ] == d
            minutes, km = leg_tables(p)
            # The leg into b starts at pred's drop-off, else at the driver's start (row N + d).
            row = np.where(pred_ok, self.booking[pred], c.start_row)
            sb = self.booking[succ]
            free_at = np.where(pred_ok, self.dropoff[pred], c.shift_start)
            empty = minutes[row, b]
            pickup = np.maximum(free_at + empty, c.earliest)
            own = self.deadline[b] - pickup
            drop = pickup + c.duration
            next_pickup = np.maximum(drop + minutes[b, sb], p.earliest[sb])
            push = np.maximum(next_pickup - self.pickup[succ], 0.0)
            downstream = np.where(succ_ok, self.slack[succ] - push, c.shift_end - drop)
            into = km[row, b]
            out = np.where(succ_ok, km[b, sb], 0.0)
            bridge = np.where(succ_ok, km[row, sb], 0.0)
            shape = (n, k)
            self._grid_cache = Grid(
                own=own.reshape(shape),
                downstream=downstream.reshape(shape),
                empty=empty.reshape(shape),
                push=np.where(succ_ok, push, np.nan).reshape(shape),
                km=(into + out - bridge).reshape(shape),
            )
        return self._grid_cache

    def _grid_compiled(self) -> Grid:
        """`_grid`'s tables (and `fits`) from `optimizer/_kernels.c`'s `grid`."""
        assert compiled is not None
        p = self.problem
        n, k = p.n_bookings, p.n_drivers
        t = kernel_tables(p)
        own, downstream, empty, push, km = np.empty((5, n, k))
        fits = np.empty((n, k), dtype=bool)
        deadline = np.ascontiguousarray(self.deadline, dtype=np.float64)
        compiled.grid(n, k, self.key, self.driver, self.booking, self.pickup, self.dropoff,
                      self.slack, deadline, t.order, t.earliest, t.duration, t.shift_start,
                      t.shift_end, t.minutes, t.km,
                      own, downstream, empty, push, km, fits)  # fmt: skip
        return Grid(own=own, downstream=downstream, empty=empty, push=push, km=km, fits=fits)

    def _insertion(
        self, b: IntArray, d: IntArray, skip: IntArray | None = None
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        both = self._insert_compiled(b, d, skip)
        if both is not None:
            return both[0], both[1], both[2], both[3]
        own, downstream, empty, push, _, _, _ = self._insert_parts(b, d, skip)
        return own, downstream, empty, push

    def insertion_rows(self, b: IntArray, d: IntArray, skip: IntArray) -> FloatArray:
        """(5, len(b)): `insertion(b, d, skip)`'s own, downstream, empty and push, then
        `km_insertion`'s km, by the compiled loops (only with them; see `optimizer.kernels`)."""
        out = self._insert_compiled(b, d, skip)
        assert out is not None, "needs the compiled loops, 1-D rows"
        return out

    def _insert_compiled(
        self, b: IntArray, d: IntArray, skip: IntArray | None
    ) -> FloatArray | None:
        """`_insert_parts`' four arrays and `_km_added`'s, as the rows of one (5, len(b))
        array, by `_kernels.insert` (the same arithmetic); None without the compiled loops or
        for rows that are not 1-D."""
        if compiled is None or b.ndim != 1 or d.shape != b.shape:
            return None
        if skip is not None and skip.shape != b.shape:
            return None
        p = self.problem
        t = kernel_tables(p)
        out = np.empty((5, len(b)))
        compiled.insert(p.n_bookings, p.n_drivers, self.key, self.driver, self.booking,
                        self.pickup, self.dropoff, self.slack,
                        np.ascontiguousarray(self.deadline, dtype=np.float64), t.order,
                        t.earliest, t.duration, t.shift_start, t.shift_end, t.minutes, t.km,
                        np.ascontiguousarray(b, dtype=np.int64),
                        np.ascontiguousarray(d, dtype=np.int64),
                        b"" if skip is None else np.ascontiguousarray(skip, dtype=np.int64),
                        out[0], out[1], out[2], out[3], out[4])  # fmt: skip
        return out

    def _insert_parts(
        self, b: IntArray, d: IntArray, skip: IntArray | None
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, IntArray, IntArray, BoolArray]:
        """`_insertion`'s four arrays plus the rows `_km_added` needs (one neighbour search)."""
        p = self.problem
        minutes = leg_tables(p)[0]
        pred, pred_ok, succ, succ_ok = self.neighbours(b, d, skip)
        row = np.where(pred_ok, self.booking[pred], p.n_bookings + d)  # see `_km_removal`
        sb = self.booking[succ]
        free_at = np.where(pred_ok, self.dropoff[pred], p.shift_start[d])
        empty = minutes[row, b]
        pickup = pickup_at(p, free_at + empty, b)
        own = self.deadline[b] - pickup
        drop = dropoff_at(p, pickup, b)
        next_pickup = pickup_at(p, drop + minutes[b, sb], sb)
        push = np.maximum(next_pickup - self.pickup[succ], 0.0)
        downstream = np.where(succ_ok, self.slack[succ] - push, p.shift_end[d] - drop)
        return own, downstream, empty, np.where(succ_ok, push, np.nan), row, sb, succ_ok

    def insertion_km(
        self, b: IntArray, d: IntArray, skip: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """`insertion(b, d, skip)` and `km_insertion(b, d, skip)` at once, for a `skip` on
        every row (they share the neighbour search; the same values)."""
        both = self._insert_compiled(b, d, skip)
        if both is not None:
            return both[0], both[1], both[2], both[3], both[4]
        own, downstream, empty, push, row, sb, succ_ok = self._insert_parts(b, d, skip)
        return own, downstream, empty, push, self._km_added(b, row, sb, succ_ok)

    def fits_table(self) -> BoolArray | None:
        """`fits` of every (booking, driver) pair as an (N, K) table; None on larger days."""
        grid = self._grid()
        if grid is None:
            return None
        if grid.fits is None:
            grid.fits = fits_mask(grid.own, grid.downstream, grid.push)
        return grid.fits

    def fits(self, b: IntArray, d: IntArray) -> BoolArray:
        """Booking b inserted alone into driver d's route keeps every window and the shift.

        Exact for single-booking moves under the ride model and the deadlines when the route
        had no violation; a route that already breaks something is only offered moves that push
        nothing. A mask, never a verdict.
        """
        grid = self._grid()
        if grid is not None:
            if grid.fits is None:
                grid.fits = fits_mask(grid.own, grid.downstream, grid.push)
            out: BoolArray = grid.fits[b, d]
            return out
        own, downstream, _, push = self.insertion(b, d)
        return fits_mask(own, downstream, push)
