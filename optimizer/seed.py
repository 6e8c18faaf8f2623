"""The original system's one historical day, rebuilt in code: `examples/seed-day.json`.

The in-house system's report (`seed/original-system-report.fr.md`) describes a dispatch of
22 October 2025 with 10 bookings and 3 drivers (ids 2, 3, 4, here `driver-a/b/c`): the heuristic
gave 5/3/2 rides, and two accepted moves (booking 169 to driver 3, then booking 156 to
driver 4) made it 4/3/3. The report kept no coordinates or times, so this day is a plausible,
anonymised reconstruction around Geneva with those facts built in:

* the heuristic plan 5/3/2 is feasible under the ride model;
* booking-169 (A -> B) then booking-156 (B -> C) are feasible one after the other: 4/3/3;
  booking-154 and booking-163 could also go from A to C;
* some moves must be rejected, so the audit trail shows why: booking-151 needs a wheelchair
  and only A has one (`capability`), booking-160 is locked to A (`locked`), booking-154 would
  be late with B (`time_window`), booking-163 is urgent and B could not reach it on time
  (`priority`), booking-169 clashes with C's 13:00 ride (`time_window`).

Regenerate the file with `python -m optimizer.seed`.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from schemas import Assignment, Booking, Driver, HeuristicDone, Location

SERVICE_DATE = date(2025, 10, 22)
ZURICH_SUMMER = timezone(timedelta(hours=2))  # Europe/Zurich on 2025-10-22 (CEST)
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "examples" / "seed-day.json"

# (booking id, pickup (lat, lon), dropoff (lat, lon), window start "HH:MM", width minutes,
#  service minutes, priority, requirements, locked, heuristic driver)
_BOOKINGS: tuple[
    tuple[
        str,
        tuple[float, float],
        tuple[float, float],
        str,
        int,
        float,
        int,
        tuple[str, ...],
        bool,
        str,
    ],
    ...,
] = (
    # driver A (wheelchair van): five rides
    ("booking-151", (46.1985, 6.1395), (46.1935, 6.1490), "08:00", 20, 8.0, 0, ("wheelchair",),
     False, "driver-a"),  # Plainpalais -> HUG, wheelchair
    ("booking-154", (46.2010, 6.1620), (46.2085, 6.1810), "09:35", 15, 5.0, 0, (), False,
     "driver-a"),  # Eaux-Vives -> Grangettes
    ("booking-160", (46.1815, 6.1385), (46.1935, 6.1490), "11:00", 20, 5.0, 0, (), True,
     "driver-a"),  # Carouge -> HUG, the patient's regular driver: locked
    ("booking-169", (46.1935, 6.1490), (46.2100, 6.1300), "13:00", 20, 5.0, 0, (), False,
     "driver-a"),  # HUG -> Servette
    ("booking-163", (46.2085, 6.1810), (46.1960, 6.2000), "15:00", 15, 4.0, 1, (), False,
     "driver-a"),  # Grangettes -> Thônex, urgent
    # driver B: three rides
    ("booking-153", (46.1880, 6.1180), (46.1920, 6.1530), "08:30", 20, 4.0, 0, (), False,
     "driver-b"),  # Lancy -> HUG Beau-Séjour
    ("booking-156", (46.1840, 6.1020), (46.2340, 6.0790), "09:30", 20, 5.0, 0, (), False,
     "driver-b"),  # Onex -> Hôpital de la Tour, Meyrin
    ("booking-165", (46.2840, 6.1620), (46.1935, 6.1490), "14:40", 20, 5.0, 0, (), False,
     "driver-b"),  # Versoix -> HUG
    # driver C: two rides
    ("booking-158", (46.2310, 6.0760), (46.1935, 6.1490), "10:30", 20, 6.0, 0, (), False,
     "driver-c"),  # Meyrin -> HUG
    ("booking-166", (46.2310, 6.0760), (46.2840, 6.1620), "13:00", 20, 4.0, 0, (), False,
     "driver-c"),  # Meyrin -> Versoix, home from a day clinic
)  # fmt: skip

# (driver id, shift start, shift end, start (lat, lon), capabilities)
_DRIVERS: tuple[tuple[str, str, str, tuple[float, float], tuple[str, ...]], ...] = (
    ("driver-a", "07:00", "17:00", (46.1836, 6.1395), ("wheelchair",)),  # Carouge depot
    ("driver-b", "07:30", "16:30", (46.1897, 6.1150), ()),  # home, Lancy
    ("driver-c", "08:00", "17:00", (46.2172, 6.0843), ()),  # Vernier depot
)


def seed_day() -> HeuristicDone:
    """The 22 October 2025 day: 10 bookings, 3 drivers, heuristic plan 5/3/2, mode auto."""
    return HeuristicDone(
        event_id="evt-seed-2025-10-22",
        dispatch_id="dsp-seed-2025-10-22",
        company_id="company-1",
        service_date=SERVICE_DATE,
        mode="auto",
        produced_at=datetime(2025, 10, 21, 23, 45, tzinfo=ZURICH_SUMMER),  # the report's time
        drivers=tuple(
            Driver(
                driver_id=driver_id,
                shift_start=_at(start),
                shift_end=_at(end),
                start=Location(lat=lat, lon=lon),
                capabilities=caps,
            )
            for driver_id, start, end, (lat, lon), caps in _DRIVERS
        ),
        bookings=tuple(_booking(*row[:-1]) for row in _BOOKINGS),
        assignments=tuple(Assignment(booking_id=row[0], driver_id=row[-1]) for row in _BOOKINGS),
    )


def seed_day_json() -> str:
    """The seed day exactly as stored in `examples/seed-day.json` (indent 2, final newline)."""
    return seed_day().model_dump_json(indent=2) + "\n"


def write_seed_day(path: Path | str = DEFAULT_PATH) -> Path:
    """Write the seed day to `path` (default: `examples/seed-day.json`) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(seed_day_json(), encoding="utf-8")
    return out


def _booking(
    booking_id: str,
    pickup: tuple[float, float],
    dropoff: tuple[float, float],
    opens: str,
    width: int,
    service: float,
    priority: int,
    requirements: tuple[str, ...],
    locked: bool,
) -> Booking:
    return Booking(
        booking_id=booking_id,
        pickup=Location(lat=pickup[0], lon=pickup[1]),
        dropoff=Location(lat=dropoff[0], lon=dropoff[1]),
        pickup_earliest=_at(opens),
        pickup_latest=_at(opens) + timedelta(minutes=width),
        service_minutes=service,
        priority=priority,
        requirements=requirements,
        locked=locked,
    )


def _at(hhmm: str) -> datetime:
    hours, minutes = (int(v) for v in hhmm.split(":"))
    return datetime(2025, 10, 22, hours, minutes, tzinfo=ZURICH_SUMMER)


if __name__ == "__main__":
    print(write_seed_day(*sys.argv[1:2]))
