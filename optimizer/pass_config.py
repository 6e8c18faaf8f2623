"""The swap pass's parameters (`PassConfig`): budgets, which phases run, the objective.

One frozen dataclass flows from the operator's settings (`streams.settings`) to the pass,
training and evaluation; callers change it with `dataclasses.replace`. `optimizer.swap_pass`
re-exports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from optimizer.objective import Objective

__all__ = ["PassConfig"]


@dataclass(frozen=True, slots=True)
class PassConfig:
    """Parameters of the swap pass."""

    max_swaps: int = 10
    """Least number of steps (each step accepts at most one move)."""
    swaps_per_booking: float = 1.0
    """The budget grows with the day: max(max_swaps, ceil(swaps_per_booking * bookings))."""
    min_improvement: float = 0.5
    """Least objective gain (see `Objective.gain`) for a move to be accepted."""
    max_checks: int = 40
    """Most candidates the validator checks per ranking (each one is audited)."""
    chains: bool = True
    """Try two-step ejection chains when no plain move or swap passes."""
    batch_moves: bool = True
    """Accept more than one move per ranking when they touch different drivers (faster)."""
    exchanges: bool = True
    """When no move, swap or chain improves, try segment exchanges (`optimizer.exchange`)."""
    exchange_rides: int = 5
    """Most rides one segment exchange moves."""
    ejection_depth: int = 4
    """Most rides one ejection chain (`optimizer.ejection`, any ends) moves (0: none)."""
    lookahead_depth: int = 2
    """Most count-neutral steps the lookahead takes before an improving one (0: none)."""
    lookahead_width: int = 3
    """Plateau plans the lookahead keeps per plan it expands."""
    lookahead_checks: int = 300
    """Most validator checks one lookahead may spend (it stops there: effort is bounded)."""
    repair_tries: tuple[tuple[int, int], ...] = ((3, 30), (4, 10), (5, 4), (9, 2))
    """When nothing else improves, re-plan driver subsets exactly (`optimizer.repair`):
    (subset size, most solves) pairs, the next only when the previous found nothing (empty:
    never). The nine-driver re-plans are for days where a full wheelchair van's rides can
    only leave through the other vans, each of which must pass a ride on."""
    repair_conflicts: int = 20000
    """CP-SAT conflict limit per subset re-plan (a deterministic bound on its effort)."""
    whole_day_bookings: int = 120
    """On days with at most this many assigned bookings, when the subset re-plans find
    nothing, one re-plan of every driver that asks only for a smaller gap
    (`repair.whole_day_move`; 0: never). It replaces the biggest `repair_tries` entry there."""
    whole_day_conflicts: int = 20000
    """CP-SAT conflict limit of that whole-day re-plan."""
    repair_deterministic_time: float = 1.0
    """CP-SAT's deterministic time limit (its own work units, roughly CPU seconds but the same
    on any machine and load) for every re-plan, subset or whole day. The conflict limits alone
    let a search that propagates long between conflicts run on: a whole-day re-plan of a day
    built from Solomon's R101 spent 12 s to reach 20,000 conflicts and found nothing. The
    re-plans that succeed on our held-out days use at most ~0.1."""
    repair_deterministic_budget: float = 0.5
    """Most CP-SAT deterministic time all re-plans of one pass may spend together (each solve
    stops at `repair_deterministic_time` or at what is left of this; none starts once it is
    spent). Machine-independent like the per-solve limit. On the held-out days a pass's
    re-plans spend at most ~0.12 in all; the patient 100x13 day whose optimum only a
    whole-day re-plan reaches (tests/optimizer/test_whole_day.py) 0.33; Solomon days whose
    re-plans all fail spent 2-3 per pass (2-3 s of CPU) without it."""
    repair_work: int = 500_000
    """Most CP-SAT model terms (per solve: rides x rides x drivers / 2, about its pairwise
    constraints, which set its cost) all re-plans of one pass may build, on days up to
    `work_bookings` bookings (see there above). A deterministic bound on the repair's share."""
    lookahead_max_bookings: int = 200
    """Days with more assigned bookings skip the lookahead: on patient 300x40 days (seeds
    1000-1019, 2000-2019) and generated ones (1000-1011) no final gap changed without it,
    while it cost up to ~30 ms of CPU on the stuck ones (its `lookahead_work` is nearly spent
    there anyway: 82 checks). Up to here its budget is unchanged."""
    lookahead_work: int = 20_000
    """Most validator checks all lookaheads of one pass may spend together, on days up to
    `work_bookings` bookings (each one also stops at `lookahead_checks`)."""
    work_bookings: int = 100
    """Above this many bookings `repair_work` and `lookahead_work` fall with the fifth power
    of the size (300 bookings: 1/243): a subset's model grows with its rides squared, a check
    with the routes, and a big day gets stuck more often, while the latency target (300 ms at
    300x40) is fixed. Where these budgets bite the pass ends `no_improving_move` within its
    bounded neighbourhoods, as when `lookahead_checks` bites."""
    repair_first: bool = False
    """Try the subset repair before the lookahead (else after it)."""
    cost_phase: bool = True
    """After fairness, cut empty driving and lateness at the same ride counts
    (`optimizer.cost_phase`)."""
    cost_checks_per_booking: float = 4.0
    """The cost phase stops after max(100, ceil(this x bookings)) validator checks."""
    cost_work: float = 3000.0
    """The cost phase takes at most max(3, ceil(cost_work / bookings)) rounds (each round
    ranks the whole neighbourhood, which grows with the day; a deterministic bound)."""
    cost_list_big: int = 100
    """On days with more assigned bookings than `km_replan_max_bookings` (no km re-plans
    there), one cost-phase round ranks this many relocations and swaps (else `max_checks`),
    swaps only when both halves pass the forward-slack test (most others break a window or
    the shift: they were ~85 % of the phase's checks there), and checks down the list while
    its checks last. 300x40, greedy, seeds 1000-1009, from the same fairness plans: patient
    deadhead 1,524 -> 1,381 km, generated 660 -> 656 km and lateness 137 -> 131 min, the
    phase's CPU about half of before."""
    cost_work_big: float = 2400.0
    """`cost_work` on those days (300 bookings: 8 rounds)."""
    km_replan_sizes: tuple[int, ...] = (3, 5)
    """When the cost phase's moves are stuck, re-plan subsets of this many drivers for km
    (`optimizer.km_repair`), smaller first; a size above the fleet's is the whole day
    (empty: never)."""
    km_replan_width: int = 96
    """Partial plans the km re-plan's beam keeps per ride (its effort and its reach)."""
    km_replan_work: float = 1500.0
    """The km re-plans' work budget per booking of the day, in partial plans the beam
    expands (a re-plan also costs 300 for its set-up, a bound 50; about 3 us each on one
    core): a deterministic bound, checked before each re-plan ...
    Session 6 (held-out seeds, 10 days per class, greedy): width 48 / 600 per booking /
    cap 45,000 -> 96 / 1,500 / 90,000 took mean deadhead 188.9 -> 185.2 km (generated 60x8),
    345.4 -> 335.8 (patient 60x8), 462.1 -> 447.6 (patient 100x13), 267.2 -> 265.7
    (generated 100x13); the budget was what stopped the re-plans there."""
    km_replan_work_cap: float = 90000.0
    """... and at most this much in a pass (about 270 ms on one core)."""
    km_replan_min_bookings: int = 12
    """Days with fewer assigned bookings skip the km re-plans: their deadhead is already
    within a few percent of the minimum (10x3: +2 %) and they set the worker's throughput."""
    km_replan_max_bookings: int = 150
    """Days with more assigned bookings skip them too: the pass's 300 ms target at 300x40
    leaves them no room (the deadhead target is for days up to 100x13)."""
    rr_iterations: int = 16000
    """When the cost phase's moves and km re-plans are stuck, at most this many rounds of
    ruin and recreate (`optimizer.ruin_recreate`) on days of `rr_min_bookings` ..
    `km_replan_max_bookings` assigned bookings and `rr_min_drivers` drivers or more (0:
    never; a cap on rounds that cost no work, as skipped ones: at the default work a 100x13
    day takes ~2,600 re-plans and the cap does not bind) ..."""
    rr_work: float = 4_000_000.0
    """... and at most this much beam work in all (`km_replan_work`'s units): a
    deterministic budget (0: never; `DISPATCH_RL_RUIN_RECREATE_WORK`), about 220-250 ms of
    one core with the compiled re-plan (`_kernels.replan`; a unit is ~55 ns there). Session
    10, fresh 100x13 days (seeds 8,004,000+ / 9,004,000+, 20 per kind, both policies; the
    whole pass, `bench/ruin_recreate.py --fresh`): 1,000,000 at (5, 0.2) -> 4,000,000 at
    (10, 1) took the final deadhead 247.5 -> 241.7 km (generated, greedy), 248.4 -> 240.5
    (generated, DQN), 422.1 -> 410.0 (patient, greedy), 421.1 -> 406.3 (patient, DQN).
    The search saturates beyond: 6,000,000 and 8,000,000 (the phase alone, 40 held-out runs)
    ended within +-1 % of 4,000,000's deadhead for 1.5-2x its CPU."""
    rr_min_bookings: int = 50
    """Days with fewer assigned bookings skip ruin and recreate ..."""
    rr_min_drivers: int = 10
    """... and so do fleets under this many drivers: there the km re-plans' subsets of 3-5
    drivers cover much of the fleet and come close to the minimum (the +10 % target is met
    up to 60x8), and the phase's ~200 ms would multiply the pass's time for little
    (held-out 60x8, 4 days per kind, with it: deadhead -0.1 to -4 %, the generated days'
    pass 40 -> 250 ms). Patient 100x13 days often have only 70-80 bookings assigned."""
    rr_sizes: tuple[int, ...] = (3, 4)
    """How many drivers one ruin takes the rides of (one of these, at random)."""
    rr_width: int = 48
    """Partial plans the recreate's beam keeps per ride (`km_repair.km_replan`)."""
    rr_temperature: tuple[float, float] = (10.0, 1.0)
    """Annealing temperature at the first and the last round, in km of operating cost: a
    round may replace the working plan with a dearer one (by up to an exponential draw of
    this mean; 0: only cheaper plans). At 4,000,000 work (10, 1) beat (5, 0.2) by ~0.6 % of
    deadhead on average over 40 held-out and 80 fresh 100x13 runs (3 of 4 kind groups);
    (20, 0.2), (15, 0.3), (10, 0.5), (3, 0.1), (5, 0.05) were no better."""
    rr_seed: int = 0
    """Seed of the phase's random numbers (the same seed, the same plan)."""
    stop_at_target: bool = True
    """Stop once the ride-count gap is at its floor (0 or 1): fairness cannot improve."""
    polish_steps: int = 0
    """Once at the floor, up to this many more steps of count-neutral moves and swaps that
    improve the later objective terms (ranked by the policy; the cost phase supersedes it)."""
    objective: Objective = field(default_factory=Objective)
    time_limit_s: float = 0.0
    """Stop taking steps after this many seconds (0: no limit). A safety net for huge days:
    the plan so far is as valid as any (each accepted move keeps the invariant), but where the
    limit bites the result depends on the machine's speed, so it is off in tests."""

    def budget(self, n_bookings: int) -> int:
        return max(self.max_swaps, math.ceil(self.swaps_per_booking * n_bookings))

    def repair_budget(self, n_bookings: int) -> int:
        return int(self.repair_work * self._big_day_scale(n_bookings))

    def lookahead_budget(self, n_bookings: int) -> int:
        return int(self.lookahead_work * self._big_day_scale(n_bookings))

    def _big_day_scale(self, n_bookings: int) -> float:
        return float(min(1.0, self.work_bookings / max(n_bookings, 1)) ** 5)

    def cost_checks(self, n_bookings: int) -> int:
        return max(100, math.ceil(self.cost_checks_per_booking * n_bookings))

    def cost_rounds(self, n_bookings: int) -> int:
        work = self.cost_work_big if self.big_cost_day(n_bookings) else self.cost_work
        return max(3, math.ceil(work / max(n_bookings, 1)))

    def cost_list(self, n_bookings: int) -> int:
        """How many moves one cost-phase round ranks (see `cost_list_big`)."""
        return self.cost_list_big if self.big_cost_day(n_bookings) else self.max_checks

    def big_cost_day(self, n_bookings: int) -> bool:
        """Days whose cost phase has no km re-plans (`km_replan_max_bookings`)."""
        return n_bookings > self.km_replan_max_bookings

    def rr_budget(self, n_bookings: int, n_drivers: int) -> int:
        """Rounds of ruin and recreate for a day of `n_bookings` assigned bookings and
        `n_drivers` drivers."""
        runs = (
            self.rr_min_bookings <= n_bookings <= self.km_replan_max_bookings
            and n_drivers >= self.rr_min_drivers
            and self.rr_work > 0
        )
        return max(self.rr_iterations, 0) if runs else 0

    def km_work(self, n_bookings: int) -> float:
        """The km re-plans' budget for a day of `n_bookings` assigned bookings (0 outside
        `km_replan_min_bookings` .. `km_replan_max_bookings`)."""
        if not self.km_replan_min_bookings <= n_bookings <= self.km_replan_max_bookings:
            return 0.0
        if not self.km_replan_sizes or self.km_replan_work <= 0:
            return 0.0
        return min(self.km_replan_work * n_bookings, self.km_replan_work_cap)
