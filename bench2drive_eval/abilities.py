"""The five Bench2Drive abilities: success ratios over the route types each ability contains.

Traffic_Signs also credits a failed route that got past its first junction without a red-light or stop infraction;
that needs CARLA map geometry, supplied here as a per-route junction-fraction file. Without it, Traffic_Signs counts
strict successes only and the result says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench2drive_eval.records import RecordError, read_json, route_number
from bench2drive_eval.routes import Route
from bench2drive_eval.scores import is_success

log = logging.getLogger(__name__)

ABILITY_TYPES: dict[str, frozenset[str]] = {
    "Overtaking": frozenset(
        {
            "Accident",
            "AccidentTwoWays",
            "ConstructionObstacle",
            "ConstructionObstacleTwoWays",
            "HazardAtSideLane",
            "HazardAtSideLaneTwoWays",
            "ParkedObstacle",
            "ParkedObstacleTwoWays",
            "VehicleOpensDoorTwoWays",
        }
    ),
    "Merging": frozenset(
        {
            "CrossingBicycleFlow",
            "EnterActorFlow",
            "HighwayExit",
            "InterurbanActorFlow",
            "HighwayCutIn",
            "InterurbanAdvancedActorFlow",
            "MergerIntoSlowTraffic",
            "MergerIntoSlowTrafficV2",
            "NonSignalizedJunctionLeftTurn",
            "NonSignalizedJunctionRightTurn",
            "NonSignalizedJunctionLeftTurnEnterFlow",
            "ParkingExit",
            "SequentialLaneChange",
            "SignalizedJunctionLeftTurn",
            "SignalizedJunctionRightTurn",
            "SignalizedJunctionLeftTurnEnterFlow",
        }
    ),
    "Emergency_Brake": frozenset(
        {
            "BlockedIntersection",
            "DynamicObjectCrossing",
            "HardBreakRoute",
            "OppositeVehicleTakingPriority",
            "OppositeVehicleRunningRedLight",
            "ParkingCutIn",
            "PedestrianCrossing",
            "ParkingCrossingPedestrian",
            "StaticCutIn",
            "VehicleTurningRoute",
            "VehicleTurningRoutePedestrian",
            "ControlLoss",
        }
    ),
    "Give_Way": frozenset({"InvadingTurn", "YieldToEmergencyVehicle"}),
    "Traffic_Signs": frozenset(
        {
            "BlockedIntersection",
            "OppositeVehicleTakingPriority",
            "OppositeVehicleRunningRedLight",
            "PedestrianCrossing",
            "VehicleTurningRoute",
            "VehicleTurningRoutePedestrian",
            "EnterActorFlow",
            "CrossingBicycleFlow",
            "NonSignalizedJunctionLeftTurn",
            "NonSignalizedJunctionRightTurn",
            "NonSignalizedJunctionLeftTurnEnterFlow",
            "SignalizedJunctionLeftTurn",
            "SignalizedJunctionRightTurn",
            "SignalizedJunctionLeftTurnEnterFlow",
            "T_Junction",
            "VanillaNonSignalizedTurn",
            "VanillaSignalizedTurnEncounterGreenLight",
            "VanillaSignalizedTurnEncounterRedLight",
            "VanillaNonSignalizedTurnEncounterStopsign",
        }
    ),
}
ABILITIES: tuple[str, ...] = tuple(ABILITY_TYPES)
JUNCTION_MARGIN_WAYPOINTS = 8  # the tool's "+8 to pass the trigger volume"
SEMANTICS = ("v0.0.4", "v0.0.3")


def load_junction_fractions(path: str | os.PathLike) -> dict[str, float]:
    """Read ``{route_id: fraction}`` or ``{route_id: {"first_junction_index": k, "num_waypoints": n}}``.

    ``k`` is the 1-based index of the first junction waypoint on the 1 m planner route and ``n`` its length; the
    fraction a failed route must exceed is ``(k + 8) / n``.
    """
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise RecordError(f"{path}: junction file must be an object keyed by route id")
    out: dict[str, float] = {}
    for rid, val in doc.items():
        if isinstance(val, (int, float)):
            frac = float(val)
        elif isinstance(val, dict) and {"first_junction_index", "num_waypoints"} <= val.keys():
            k, n = int(val["first_junction_index"]), int(val["num_waypoints"])
            if not 1 <= k <= n:
                raise RecordError(f"{path}: route {rid}: need 1 <= first_junction_index <= num_waypoints")
            frac = (k + JUNCTION_MARGIN_WAYPOINTS) / n
        else:
            raise RecordError(f"{path}: route {rid}: expected a number or first_junction_index/num_waypoints")
        out[str(rid)] = frac
    return out


@dataclass(frozen=True)
class AbilityResult:
    """Ratios in percent, their mean, the success/total counts, and routes that had no record."""

    ratios: dict[str, float | None]
    mean: float | None
    counts: dict[str, tuple[int, int]]
    crashed: list[tuple[str, str]] = field(default_factory=list)
    traffic_signs_strict_only: bool = False
    semantics: str = "v0.0.4"

    def as_dict(self) -> dict:
        return {**{a: self.ratios[a] for a in ABILITIES}, "mean": self.mean}


def abilities(
    records: Sequence[dict],
    routes: Sequence[Route],
    junction_fractions: Mapping[str, float] | None = None,
    semantics: str = "v0.0.4",
) -> AbilityResult:
    """Ability ratios as ``tools/ability_benchmark.py``.

    Routes without a record are reported as crashed and left out of every denominator. ``v0.0.3`` reproduces the
    old tool that added every Traffic_Signs route to the denominator twice (once strict, once by the junction rule).
    """
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
    by_number: dict[str, dict] = {}
    for rec in records:  # the tool takes the first record whose number matches
        by_number.setdefault(route_number(rec["route_id"]), rec)
    counts = {a: [0, 0] for a in ABILITIES}
    crashed: list[tuple[str, str]] = []
    missing_geometry: list[str] = []
    for route in routes:
        stype = route.scenario_type or ""
        rec = by_number.get(route.id)
        if rec is None:
            crashed.append((stype, route.id))
            continue
        ok = is_success(rec)
        for a in ABILITIES:
            if stype in ABILITY_TYPES[a]:
                counts[a][1] += 1
                counts[a][0] += ok
        if stype not in ABILITY_TYPES["Traffic_Signs"]:
            continue
        if semantics == "v0.0.3":
            counts["Traffic_Signs"][1] += 1
        if ok and semantics == "v0.0.4":
            continue
        frac = junction_fractions.get(route.id) if junction_fractions is not None else None
        if frac is None:
            missing_geometry.append(route.id)
            if semantics == "v0.0.3":  # without geometry the junction check is credited only to strict successes
                counts["Traffic_Signs"][0] += ok
            continue
        inf = rec["infractions"]
        passed = (
            float(rec["scores"]["score_route"]) / 100.0 > frac
            and not inf.get("stop_infraction")
            and not inf.get("red_light")
        )
        counts["Traffic_Signs"][0] += passed
    ratios = {a: (100.0 * s / t if t else None) for a, (s, t) in counts.items()}
    valid = [v for v in ratios.values() if v is not None]
    mean = sum(valid) / len(ABILITIES) if len(valid) == len(ABILITIES) else None
    if missing_geometry and junction_fractions is not None:
        log.warning("no junction fraction for %d Traffic_Signs route(s); strict success used", len(missing_geometry))
    return AbilityResult(
        ratios=ratios,
        mean=mean,
        counts={a: (s, t) for a, (s, t) in counts.items()},
        crashed=crashed,
        traffic_signs_strict_only=bool(missing_geometry),
        semantics=semantics,
    )
