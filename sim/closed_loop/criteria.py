"""The leaderboard's criteria on our world: infractions, route completion, termination and the route record.

Each test follows the leaderboard's (Bench2Drive fork) definition, applied to our geometry:

- collisions (`CollisionTest`): an ego box overlapping another actor's box; ignored while the ego moves slower than
  0.1 m/s, within 5 m of the last counted collision, or against the same actor within 5 s. Static props (cones,
  barriers, signs) are `collisions_layout` with id 0, as CARLA reports them; vehicles and bicycles are
  `collisions_vehicle`; walkers `collisions_pedestrian`.
- red lights (`RunningRedLightTest`): the stop line of a red light on the ego's lane passes between the ego's "tail
  points" 0.8 x half-length behind its centre and half-length + 1 m behind it; once per light.
- stop signs (`RunningStopTest`): inside the stop's zone (front bumper from 5 m before the line to 1 m past it) the
  ego must drop below 0.1 m/s; leaving it forward without having done so is an infraction.
- outside route lanes (`OutsideRouteLanesTest`): route progress made while the ego's centre is on no lane running in
  its direction (junctions are not judged), as a percentage of the completed route.
- route deviation (`InRouteTest`, ends the route): more than 30 m from the route near the ego's progress.
- blocked (`ActorBlockedTest`, ends the route): below 0.1 m/s for 60 s (Bench2Drive; upstream 180 s).
- min speed (`MinimumSpeedRouteTest` with `checkpoints=20`; Bench2Drive logs it and leaves it out of the penalty,
  `[0.7, 'unused']`): the route is cut into sections of length/20; each tick first checks whether the route index has
  advanced more than one section length (strictly) past the previous checkpoint's point, and if so logs the section
  and starts a new one there; then it records the ego's speed and the mean speed of the background vehicles, on ticks
  that have background vehicles only. The value is round(mean ego / mean traffic x 100, 2), or the integer 100 when
  the section has no traffic samples; at the end one more event is logged when the route index is past 95 %. With
  1 m route points a section is only closed one point after its length, so a route logs fewer than 20 checkpoint
  events (a 100 m route: 16, plus the final one).
- route completion (`RouteCompletionTest`): the index of the last route point the vehicle's centre (CARLA's actor
  location) has passed (dot product with the point's direction, over the current point and the 2 after it as the
  leaderboard does), rounded to 2 decimals; 100 when above 99 % and within 10 m of the goal, which ends the route.
- yield to an emergency vehicle (`YieldToEmergencyVehicleTest`, routes of that scenario): see the class.
- the tick cap (`Failed - TickRuntime`, 4000 ticks) and the route timeout (`Agent timed out`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bench2drive_eval.records import INFRACTION_KEYS
from bench2drive_eval.scores import route_penalty
from sim.closed_loop.dynamics import VehicleState
from sim.closed_loop.world import CARLA_TYPE_IDS, LAYOUT_TYPES, LivingWorld, WorldSnapshot
from sim.scene import AgentType, TrafficLightState
from sim.traffic import light_stop_positions

STATUS_COMPLETED = "Completed"
STATUS_PERFECT = "Perfect"
FAILED_BLOCKED = "Failed - Agent got blocked"
FAILED_DEVIATED = "Failed - Agent deviated from the route"
FAILED_TIMEOUT = "Failed - Agent timed out"
FAILED_TICKS = "Failed - TickRuntime"
FAILED_AGENT_CRASHED = "Failed - Agent crashed"
FAILED_SIM_CRASHED = "Failed - Simulation crashed"
FAILED_SETUP = "Failed - Agent couldn't be set up"
FAILED_SENSORS = "Failed - Agent's sensors were invalid"


@dataclass(frozen=True)
class CriteriaConfig:
    """Thresholds of the leaderboard's criteria (Bench2Drive values; upstream in comments)."""

    collision_min_speed: float = 0.1
    collision_area_m: float = 5.0
    collision_id_time_s: float = 5.0
    blocked_speed: float = 0.1
    blocked_time_s: float = 60.0  # upstream 180
    offroad_max_m: float = 30.0
    route_timeout_s: float = 300.0
    tick_cap: int = 4000  # B2D tick_count > 4000 -> TickRuntime
    completion_threshold_pct: float = 99.0
    completion_distance_m: float = 10.0
    completion_window: int = 2  # points checked beyond the current one (WINDOWS_SIZE)
    min_speed_checkpoints: int = 20  # upstream 4
    stop_speed: float = 0.1
    stop_zone_before_m: float = 5.0
    stop_zone_after_m: float = 1.0

    def __post_init__(self) -> None:
        from agent.validation import require_positive

        require_positive(
            "CriteriaConfig",
            **{k: float(getattr(self, k)) for k in self.__dataclass_fields__},
        )


def carla_location_text(xy: np.ndarray) -> str:
    """`(x=.., y=.., z=..)` in CARLA's frame (y negated), rounded as the leaderboard's messages are."""
    return f"(x={round(float(xy[0]), 3)}, y={round(float(-xy[1]), 3)}, z=0.0)"


class MinimumSpeedTest:
    """Bench2Drive's `MinimumSpeedRouteTest` on a route's cumulative distances `accum` (one per route point).

    `update` once per tick with the route index reached, the ego's speed and the background vehicles' speeds: the
    checkpoint test comes first (the index has advanced strictly more than length/checkpoints past the previous
    checkpoint's point), then the tick's speeds are recorded, on ticks with background vehicles only. `finish` adds
    the last section when the index is past 95 % of the route. Each event is the leaderboard's message; the value is
    round(mean ego / mean traffic x 100, 2), or the integer 100 without traffic samples.
    """

    def __init__(self, accum: np.ndarray, checkpoints: int = 20, events: list[str] | None = None) -> None:
        self.accum = np.asarray(accum, dtype=np.float64)
        self.section = float(self.accum[-1]) / checkpoints
        self.events: list[str] = [] if events is None else events  # appended to (the record's list)
        self._last = 0.0  # route distance of the last checkpoint
        self._ego = self._traffic = 0.0
        self._n = 0

    def update(self, index: int, ego_speed: float, traffic_speeds: np.ndarray) -> None:
        if self.accum[index] - self._last > self.section:
            self._emit()
            self._last = float(self.accum[index])
        if len(traffic_speeds):
            self._traffic += float(np.mean(traffic_speeds))
            self._ego += float(ego_speed)
            self._n += 1

    def finish(self, index: int) -> None:
        if self.accum[index] / max(float(self.accum[-1]), 1e-9) > 0.95:  # "routes end at around 99%"
            self._emit()

    def _emit(self) -> None:
        if self._n > 0 and self._traffic:
            value: float | int = round((self._ego / self._n) / (self._traffic / self._n) * 100, 2)
        else:
            value = 100
        self.events.append(f"Average speed is {value}% of the surrounding traffic's one")
        self._ego = self._traffic = 0.0
        self._n = 0


class YieldToEmergencyVehicleTest:
    """Bench2Drive's YieldToEmergencyVehicle scenario as its criterion sees it (`yield_to_emergency_vehicle.py`,
    `YieldToEmergencyVehicleTest`).

    The scenario runs from the route's start (our routes begin at the trigger point) until the first of its two end
    conditions: the emergency vehicle (EV) came within 50 m of the ego (centre distance) and 10 s more passed (`Idle`),
    or the EV got in front of the ego (`WaitUntilInFront`: past the point the sum of both half-lengths ahead of the ego
    along its heading, and within 10 m of it) and then drove 50 m. Every tick the test fails while the ego is ahead of
    the EV (EV forward vector . (ego - EV) > 0) and passes otherwise; when the scenario (or the route) ends, a failing
    test logs "Agent failed to yield to an emergency vehicle" (penalty 0.7).
    """

    TRIGGER_DISTANCE = 50.0
    IDLE_S = 10.0
    IN_FRONT_DISTANCE = 10.0
    END_DISTANCE = 50.0

    def __init__(self, ev_id: str, ego_half_length: float, events: list[str]) -> None:
        self.ev_id = ev_id
        self.ego_half_length = float(ego_half_length)
        self.events = events
        self.failed = False
        self.ended = False
        self._near_since: float | None = None
        self._in_front_at: np.ndarray | None = None
        self._driven = 0.0

    def update(self, ego: VehicleState, centre: np.ndarray, snap: WorldSnapshot) -> None:
        if self.ended or self.ev_id not in snap.ids:
            return
        j = snap.ids.index(self.ev_id)
        if not snap.valid[j]:
            return
        ev_xy = snap.xy[j]
        fwd = np.array([math.cos(snap.heading[j]), math.sin(snap.heading[j])])
        self.failed = float(np.dot(fwd, centre - ev_xy)) > 0.0
        # end condition 1: InTriggerDistanceToVehicle(50 m) -> Idle(10 s)
        if self._near_since is None and math.dist(centre, ev_xy) < self.TRIGGER_DISTANCE:
            self._near_since = snap.time_s
        # end condition 2: WaitUntilInFront(EV, ego) -> DriveDistance(EV, 50 m)
        if self._in_front_at is None:
            ahead = centre + (self.ego_half_length + float(snap.sizes[j, 0]) / 2) * np.array(
                [math.cos(ego.heading), math.sin(ego.heading)]
            )
            lane_dir = np.array([math.cos(ego.heading), math.sin(ego.heading)])
            if float(np.dot(lane_dir, ev_xy - ahead)) > 0 and math.dist(ev_xy, ahead) < self.IN_FRONT_DISTANCE:
                self._in_front_at = ev_xy.copy()
        else:
            self._driven += math.dist(ev_xy, self._in_front_at)
            self._in_front_at = ev_xy.copy()
        idle_done = self._near_since is not None and snap.time_s - self._near_since > self.IDLE_S
        if idle_done or self._driven > self.END_DISTANCE:
            self.finish()

    def finish(self) -> None:
        """The scenario's criteria terminate (once): the event if the ego is still ahead of the EV."""
        if not self.ended and self.failed:
            self.events.append("Agent failed to yield to an emergency vehicle")
        self.ended = True


@dataclass
class RouteCriteria:
    """All criteria of one route; `update` once per tick after the world moved, `record` at the end."""

    world: LivingWorld
    points: np.ndarray  # (P, 2) dense route (1 m)
    headings: np.ndarray
    path: object
    cfg: CriteriaConfig = field(default_factory=CriteriaConfig)

    def __post_init__(self) -> None:
        self.events: dict[str, list[str]] = {k: [] for k in INFRACTION_KEYS}
        seg = np.hypot(*np.diff(self.points, axis=0).T)
        self.accum = np.concatenate([[0.0], np.cumsum(seg)])
        self.index = 0
        self.completion = 0.0
        self.done_route = False
        # collisions
        self._col_loc: np.ndarray | None = None
        self._col_id: str | None = None
        self._col_time = -math.inf
        # red lights and stop signs on the ego's path
        self._lights = light_stop_positions(self.path, self.world.map)
        self._ran_lights: set[str] = set()
        self._stops = [st.s for st in self.world.build._stop_sign_stops(self.path, None)]
        self._stop_done = [False] * len(self._stops)
        self._stop_judged = [False] * len(self._stops)
        # outside lanes
        self.outside_m = 0.0
        # blocked
        self._blocked_s = 0.0
        # min speed
        self._min_speed_test = MinimumSpeedTest(
            self.accum, self.cfg.min_speed_checkpoints, self.events["min_speed_infractions"]
        )
        # the scenario's own criterion (a yield to an emergency vehicle)
        ev = self.world.scene.metadata.get("emergency_vehicle")
        self._yield_test = (
            YieldToEmergencyVehicleTest(
                str(ev), self.world.dynamics.half_length, self.events["yield_emergency_vehicle_infractions"]
            )
            if ev
            else None
        )
        self.status: str | None = None

    # ------------------------------------------------------------------------------------------------ per tick
    def update(self, tick: int, ego: VehicleState, snap: WorldSnapshot, dt: float) -> str | None:
        """Evaluate this tick; returns the failure status when a criterion ends the route, "done" on completion."""
        centre = ego.centre(self.world.dynamics)
        speed = abs(ego.speed)
        prev_accum = self.accum[self.index]
        self._completion(centre, ego)
        progress = self.accum[self.index] - prev_accum
        self._collisions(ego, snap, centre, speed)
        self._red_lights(ego, centre)
        self._stop_signs(ego, speed)
        self._outside_lanes(centre, ego.heading, progress)
        self._min_speed(speed, snap)
        if self._yield_test is not None:
            self._yield_test.update(ego, centre, snap)
        if self.done_route:
            return "done"
        # blocked
        self._blocked_s = self._blocked_s + dt if speed < self.cfg.blocked_speed else 0.0
        if self._blocked_s > self.cfg.blocked_time_s:
            self.events["vehicle_blocked"].append(f"Agent got blocked at {carla_location_text(centre)}")
            return FAILED_BLOCKED
        # deviation from the route near the current progress
        lo, hi = max(self.index - 5, 0), min(self.index + 50, len(self.points))
        if np.hypot(*(self.points[lo:hi] - ego.pose[:2]).T).min() > self.cfg.offroad_max_m:
            self.events["route_dev"].append(f"Agent deviated from the route at {carla_location_text(centre)}")
            return FAILED_DEVIATED
        if (tick + 1) * dt >= self.cfg.route_timeout_s:
            self.events["route_timeout"].append("Route timeout.")
            return FAILED_TIMEOUT
        if tick + 1 > self.cfg.tick_cap:
            return FAILED_TICKS
        return None

    def _completion(self, centre: np.ndarray, ego: VehicleState) -> None:
        n = len(self.points)
        for i in range(self.index, min(self.index + self.cfg.completion_window + 1, n)):
            d = np.array([math.cos(self.headings[i]), math.sin(self.headings[i])])
            if float(np.dot(centre - self.points[i], d)) > 0:
                self.index = i
        self.completion = round(100.0 * self.accum[self.index] / max(self.accum[-1], 1e-9), 2)
        goal = self.points[-1]
        if (
            self.completion > self.cfg.completion_threshold_pct
            and math.dist(centre, goal) < self.cfg.completion_distance_m
        ):
            self.completion = 100.0
            self.done_route = True

    def _collisions(self, ego: VehicleState, snap: WorldSnapshot, centre: np.ndarray, speed: float) -> None:
        if self._col_loc is not None and math.dist(centre, self._col_loc) > self.cfg.collision_area_m:
            self._col_loc = None
        if self._col_id is not None and snap.time_s - self._col_time > self.cfg.collision_id_time_s:
            self._col_id = None
        for j in self.world.ego_overlaps(ego, snap):
            kind = AgentType(int(snap.types[j]))
            layout = kind in LAYOUT_TYPES
            other = "0" if layout else snap.ids[j]
            if not layout and other == self._col_id:
                continue
            if self._col_loc is not None and math.dist(centre, self._col_loc) <= self.cfg.collision_area_m:
                continue
            if speed < self.cfg.collision_min_speed:
                continue
            self._col_time = snap.time_s
            self._col_loc = centre.copy()
            if not layout:
                self._col_id = other
            key = (
                "collisions_layout"
                if layout
                else "collisions_pedestrian"
                if kind == AgentType.PEDESTRIAN
                else "collisions_vehicle"
            )
            self.events[key].append(
                f"Agent collided against object with type={CARLA_TYPE_IDS[kind]} and id={other} at "
                f"{carla_location_text(centre)}"
            )

    def _red_lights(self, ego: VehicleState, centre: np.ndarray) -> None:
        if not self._lights:
            return
        s_c, lat, _ = self.path.locate(centre[None])
        s_c, lat = float(s_c[0]), float(lat[0])
        k = int(np.clip(np.searchsorted(self.path.s, s_c), 0, len(self.path.s) - 1))
        if abs(lat) > 2.5 or math.cos(ego.heading - self.path.heading[k]) < 0:
            return
        ext = self.world.dynamics.half_length
        close, far = s_c - 0.8 * ext, s_c - ext - 1.0
        for s_line, light in self._lights:
            if light in self._ran_lights or not (far < s_line <= close):
                continue
            if self.world.light_state(light) == TrafficLightState.RED:
                self._ran_lights.add(light)
                pos = self.world._lights[light].position[:2]
                self.events["red_light"].append(f"Agent ran a red light {light} at {carla_location_text(pos)}")

    def _stop_signs(self, ego: VehicleState, speed: float) -> None:
        if not self._stops:
            return
        s_rear, lat, _ = self.path.locate(ego.pose[None, :2])
        if abs(float(lat[0])) > 3.0:
            return
        front = float(s_rear[0]) + self.world.dynamics.front_length
        for k, s_line in enumerate(self._stops):
            if self._stop_judged[k]:
                continue
            if s_line - self.cfg.stop_zone_before_m <= front <= s_line + self.cfg.stop_zone_after_m:
                if speed < self.cfg.stop_speed:
                    self._stop_done[k] = True
            elif front > s_line + self.cfg.stop_zone_after_m:
                self._stop_judged[k] = True
                if not self._stop_done[k]:
                    pos = self.path.pose_at(np.array([s_line]))[0, :2]
                    self.events["stop_infraction"].append(f"Agent ran a stop with id={k} at {carla_location_text(pos)}")

    def _outside_lanes(self, centre: np.ndarray, heading: float, progress: float) -> None:
        if progress <= 0:
            return
        m = self.world.map
        if bool(m.in_intersection(centre[None])[0]):
            return
        lanes = m.lanes_containing(centre[None])[0]
        ok = False
        for lid in lanes:
            lane = m.lanes[lid]
            d = np.hypot(*(lane.centerline - centre).T)
            if math.cos(lane.headings[int(np.argmin(d))] - heading) > 0:
                ok = True
                break
        if not ok:
            self.outside_m += progress

    def _min_speed(self, speed: float, snap: WorldSnapshot) -> None:
        bg = snap.background & snap.valid
        self._min_speed_test.update(self.index, speed, np.abs(snap.speed[bg]))

    # ------------------------------------------------------------------------------------------------ the end
    def finish(self) -> None:
        """End-of-route events: the outside-lanes total and the last min-speed section (past 95 %)."""
        completed_m = self.accum[self.index]
        if self.outside_m > 0 and completed_m > 0:
            pct = min(100.0 * self.outside_m / completed_m, 100.0)
            self.outside_pct = pct
            self.events["outside_route_lanes"].append(
                f"Agent went outside its route lanes for about {round(self.outside_m, 3)} meters "
                f"({round(pct, 2)}% of the completed route)"
            )
        else:
            self.outside_pct = 0.0
        self._min_speed_test.finish(self.index)
        if self._yield_test is not None:
            self._yield_test.finish()

    def scores(self) -> dict[str, float]:
        rc = float(self.completion)
        penalty = route_penalty(self.events, getattr(self, "outside_pct", 0.0))
        return {"score_route": rc, "score_penalty": penalty, "score_composed": max(rc * penalty, 0.0)}


def final_status(failure: str | None, completion: float, events: dict[str, list[str]]) -> str:
    """The record's status: the failure that ended the route, else Completed / Perfect at 100 % (Perfect needs no
    events at all, so min-speed logging makes it as rare as in the official results), else plain "Failed"."""
    if failure is not None:
        return failure
    if completion >= 100.0:
        return STATUS_PERFECT if not any(events.values()) else STATUS_COMPLETED
    return "Failed"
