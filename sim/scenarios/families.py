"""The scenario families: each draws a map and the situation it is named after, then hands a `SceneBuild` back.

Every recipe decides the ego's lane chain (and lane-change profile), its start, the scripted actors that make the
situation, the light timing and spawn exclusions, and records its parameters in the scene metadata.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from sim import roads
from sim.expert import ExpertConfig
from sim.roads import LANE_WIDTH, RoadMap
from sim.scenarios.build import SceneBuild
from sim.scene import SPEED_LIMIT_40_KMH, SPEED_LIMIT_50_KMH, SPEED_LIMIT_60_KMH, AgentType
from sim.traffic import IDMParams, four_way_plan

W = LANE_WIDTH


@functools.lru_cache(maxsize=16)
def _shared_map(builder: str, *args) -> RoadMap:
    """Fixed-parameter maps are built once per process and shared by the scenes that use them (read-only)."""
    return getattr(roads, builder)(*args)


def _r(x: float) -> float:
    return round(float(x), 3)


def _populate(b: SceneBuild, bg: int, peds: int) -> None:
    b.sidewalk_pedestrians(peds)
    b.spawn_background(bg)


def _fwd_route(road: roads.RoadHandle) -> list[str]:
    return list(road.fwd)


# ---- straight road ----
def straight_road(b: SceneBuild, bg: int, peds: int) -> None:
    rng = b.rng
    n_fwd, n_bwd = int(rng.integers(2, 4)), int(rng.integers(1, 3))
    limit = float(rng.choice([SPEED_LIMIT_40_KMH, SPEED_LIMIT_50_KMH, SPEED_LIMIT_60_KMH]))
    carpark = bool(rng.random() < 0.35)
    b.road = roads.straight_road(300.0, n_fwd, n_bwd, limit, carpark=carpark)
    main = b.road.roads["main"]
    k = int(rng.integers(n_fwd))
    path = b.path([main.fwd[k]])
    v0 = limit * rng.uniform(0.6, 0.9)
    b.set_ego(path, rng.uniform(20.0, 45.0), v0, _fwd_route(main))
    if carpark:
        _parked_cars(b, int(rng.integers(3, 9)))
    b.metadata.update(lanes_forward=n_fwd, lanes_backward=n_bwd, speed_limit=limit, ego_lane=k, carpark=carpark)
    _populate(b, bg, peds)


def _parked_cars(b: SceneBuild, count: int) -> None:
    poly = b.map.carparks["carpark_0"].polygon_xy
    x0, y_top = poly[:, 0].min(), poly[:, 1].max()
    slots = b.rng.permutation(14)[:count]
    for slot in slots:
        row, col = divmod(int(slot), 7)
        x = x0 + 3.0 + col * 5.5
        y = y_top - 3.0 - row * 11.0
        b.add_static(
            AgentType.VEHICLE,
            x,
            y,
            math.pi / 2 + (math.pi if b.rng.random() < 0.5 else 0.0),
            size=np.array([4.6, 1.9, 1.6]),
        )


# ---- curve ----
def curve(b: SceneBuild, bg: int, peds: int) -> None:
    rng = b.rng
    radius = rng.uniform(120.0, 220.0)
    angle = rng.uniform(math.radians(45), math.radians(90)) * (1 if rng.random() < 0.5 else -1)
    n_fwd, n_bwd = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    limit = float(rng.choice([SPEED_LIMIT_40_KMH, SPEED_LIMIT_50_KMH]))
    b.road = roads.curved_road(radius, angle, rng.uniform(40.0, 70.0), 180.0, n_fwd, n_bwd, limit)
    main = b.road.roads["main"]
    k = int(rng.integers(n_fwd))
    b.set_ego(b.path([main.fwd[k]]), rng.uniform(5.0, 25.0), limit * rng.uniform(0.6, 0.85), _fwd_route(main))
    b.metadata.update(radius_m=_r(radius), angle_rad=_r(angle), lanes_forward=n_fwd, speed_limit=limit)
    _populate(b, bg, peds)


# ---- junctions ----
def _junction_ego(b: SceneBuild, road: RoadMap, arm: int, movement: str, dist_at_now: float, v0: float) -> None:
    """Ego on `arm`'s incoming lane for `movement`, its front `dist_at_now` m before the stop line at t = 0."""
    target = road.movement_target(arm, movement)
    conns = road.connectors[(arm, target)]
    conn = conns[int(b.rng.integers(len(conns)))]
    lane_in = b.map.lanes[conn].predecessors[0]
    lane_out = b.map.lanes[conn].successors[0]
    path = b.path([lane_in, conn, lane_out])
    a = road.arms[arm]
    stop_s = None
    if a.stop_line is not None:
        from sim.traffic import first_entry_s

        stop_s = first_entry_s(path, b.map.stop_lines[a.stop_line].polygon)
    line_s = stop_s if stop_s is not None else path.lane_start[conn]
    past_s = b.current_index * b.dt
    s0 = line_s - b.ego_params.front_length - dist_at_now - v0 * past_s
    if s0 < 2.0:
        raise ValueError(f"junction arm too short for the ego start ({s0:.1f} m)")
    route = list(road.arms[arm].incoming) + conns + list(road.arms[target].outgoing)
    route = [r for r in route if r in (lane_in, conn, lane_out)] + [
        r for r in route if r not in (lane_in, conn, lane_out)
    ]
    b.set_ego(path, s0, v0, route)
    b.metadata.update(
        ego_arm=arm,
        movement=movement,
        expected_command={"left": "LEFT", "right": "RIGHT", "straight": "STRAIGHT"}[movement],
        stop_line=a.stop_line,
        connector=conn,
    )


def intersection(b: SceneBuild, bg: int, peds: int) -> None:
    """Signalised four-way crossing on green: left, right or straight."""
    rng = b.rng
    b.road = _shared_map("four_way_intersection", 2, 120.0)
    arm = int(rng.integers(4))
    movement = str(rng.choice(["left", "straight", "right"]))
    v0 = rng.uniform(6.0, 10.0)
    _junction_ego(b, b.road, arm, movement, rng.uniform(8.0, 25.0), v0)
    plan = four_way_plan(green_s=rng.uniform(14.0, 20.0))
    light = f"tl{arm}_{'left' if movement == 'left' else 'main'}"
    b.set_lights(plan, plan.phase_start(light) + rng.uniform(0.0, 2.0))
    b.metadata.update(ego_light=light)
    _populate(b, bg, peds)


def red_light(b: SceneBuild, bg: int, peds: int) -> None:
    """The ego reaches a red light and must stop before the stop line; it may turn green late in the scene."""
    rng = b.rng
    b.road = _shared_map("four_way_intersection", 2, 120.0)
    arm = int(rng.integers(4))
    movement = str(rng.choice(["straight", "straight", "left", "right"]))
    v0 = rng.uniform(7.0, 11.0)
    _junction_ego(b, b.road, arm, movement, rng.uniform(22.0, 40.0), v0)
    plan = four_way_plan(green_s=rng.uniform(10.0, 14.0))
    light = f"tl{arm}_{'left' if movement == 'left' else 'main'}"
    green_at = rng.uniform(8.5, 14.0)  # scene seconds when the ego's light turns green
    b.set_lights(plan, plan.phase_start(light) - green_at)
    n_cross = int(rng.integers(0, 3))
    _crossing_pedestrians(b, b.road, arm, n_cross)
    b.metadata.update(ego_light=light, green_at_s=_r(green_at), crossing_pedestrians=n_cross)
    _populate(b, bg, peds)


def _crossing_pedestrians(b: SceneBuild, road: RoadMap, arm: int, count: int) -> None:
    """Pedestrians crossing `arm` on its crosswalk, one per walking line, starting within the first 4 s."""
    a = road.arms[arm]
    u = np.array([math.cos(a.angle), math.sin(a.angle)])
    n = np.array([-u[1], u[0]])
    hw = len(a.incoming) * W + 2.0
    for i in range(count):
        d = road.junction_half_size + 1.2 + 1.4 * i
        line = np.stack([u * d - n * hw, u * d + n * hw])
        if b.rng.random() < 0.5:
            line = line[::-1].copy()
        start = int(b.rng.uniform(0, 4.0) / b.dt)
        xy, h, sp = b.walk_polyline(line, 0.0, b.rng.uniform(1.1, 1.5), start_step=start)
        b.add_walker(AgentType.PEDESTRIAN, xy, h, sp)


def t_junction(b: SceneBuild, bg: int, peds: int) -> None:
    """Unsignalised T: the ego comes up the stem, stops at the stop line and turns when the main road is clear."""
    rng = b.rng
    b.road = _shared_map("t_junction", 1, 120.0)
    stem = 2
    movement = str(rng.choice(["left", "right"]))
    _junction_ego(b, b.road, stem, movement, rng.uniform(2.0, 10.0), rng.uniform(3.5, 6.0))
    for i in (0, 1):
        b.priority_lanes.update(b.road.arms[i].incoming + b.road.arms[i].outgoing)
        # main-road traffic does not turn left into the stem (it would need to yield to oncoming traffic)
        for j in range(3):
            if b.road.movements.get((i, j)) == "left":
                b.banned_lanes.update(b.road.connectors[(i, j)])
    _populate(b, bg, peds)


# ---- lane changes ----
def _lane_change_path(b: SceneBuild, main: roads.RoadHandle, k_from: int, k_to: int, s_start: float, length: float):
    sign = -1.0 if k_from > k_to else 1.0  # from the right (higher index) -> target lane sees it on its right
    offset = sign * W * abs(k_from - k_to)
    return b.path([main.fwd[k_to]], offsets=[(s_start, s_start + length, offset, 0.0)])


def lane_change(b: SceneBuild, bg: int, peds: int) -> None:
    """Overtake a slow lead by changing to the left lane."""
    rng = b.rng
    n_fwd = int(rng.integers(2, 4))
    limit = SPEED_LIMIT_50_KMH
    b.road = roads.straight_road(320.0, n_fwd, int(rng.integers(1, 3)), limit)
    main = b.road.roads["main"]
    k = int(rng.integers(1, n_fwd))
    v_e, v_l = rng.uniform(9.0, 12.0), rng.uniform(3.0, 5.5)
    t_c = rng.uniform(2.5, 4.0)
    s0 = rng.uniform(15.0, 30.0)
    gap = v_e * 2.5 + 12.0 + (v_e - v_l) * t_c
    length = max(40.0, v_e * 4.0)
    s_start = s0 + v_e * t_c
    path = _lane_change_path(b, main, k, k - 1, s_start, length)
    b.set_ego(path, s0, v_e, _fwd_route(main))
    lead_path = b.path([main.fwd[k]])
    size = np.array([4.7, 1.9, 1.6])
    b.add_vehicle(
        lead_path,
        s0 + b.ego_params.front_length + gap + size[0] / 2,
        v_l,
        "scripted",
        size=size,
        speed_factor=v_l / limit,
    )
    b.no_spawn += [(main.fwd[k - 1], 0.0, s_start + length + 80.0), (main.fwd[k], s0 - 10.0, s0 + 200.0)]
    b.metadata.update(
        maneuver="lane_change_left", lead_speed=_r(v_l), lane_change_start_s=_r(s_start), expected_command="STRAIGHT"
    )
    _populate(b, bg, peds)


def merge(b: SceneBuild, bg: int, peds: int) -> None:
    """The ego joins the main road from an on-ramp through the acceleration lane."""
    rng = b.rng
    b.road = _shared_map("on_ramp", 2, int(rng.integers(1, 3)))
    r = b.road.roads
    chain = [r["ramp"].fwd[0], "mid_acc", r["down"].fwd[-1]]
    path = b.path(chain)
    s0 = rng.uniform(45.0, 75.0)  # reaches the taper within the logged future
    b.set_ego(path, s0, rng.uniform(8.0, 11.0), chain + [x for x in r["down"].fwd if x != chain[-1]])
    # keep the main road's right lane clear beside the ego while it merges
    b.no_spawn += [(r["up"].fwd[-1], 0.0, 1e9), (r["mid"].fwd[-1], 0.0, 1e9), (r["ramp"].fwd[0], 0.0, 1e9)]
    b.metadata.update(maneuver="merge", expected_command="STRAIGHT")
    _populate(b, bg, peds)


# ---- obstacles and other actors ----
def static_obstacle(b: SceneBuild, bg: int, peds: int) -> None:
    """A parked car or a construction zone blocks the ego's lane; the ego changes into the lane on its left."""
    rng = b.rng
    n_fwd = int(rng.integers(2, 4))
    b.road = roads.straight_road(320.0, n_fwd, int(rng.integers(1, 3)), SPEED_LIMIT_50_KMH)
    main = b.road.roads["main"]
    k = int(rng.integers(1, n_fwd))
    v_e = rng.uniform(7.0, 11.0)
    s0 = rng.uniform(15.0, 30.0)
    s_obs = s0 + v_e * b.current_index * b.dt + rng.uniform(45.0, 70.0)
    length = max(40.0, v_e * 4.0)
    s_start = s_obs - length - 15.0
    b.set_ego(_lane_change_path(b, main, k, k - 1, s_start, length), s0, v_e, _fwd_route(main))
    lane = b.map.lanes[main.fwd[k]]
    # the lane runs along +x; its centre y is constant
    y_c = float(lane.centerline[0, 1])
    x_obs = float(lane.centerline[0, 0] + s_obs)
    kind = str(rng.choice(["parked_car", "cones"]))
    if kind == "parked_car":
        b.add_static(
            AgentType.VEHICLE,
            x_obs + 2.4,
            y_c - rng.uniform(0.0, 0.6),
            rng.uniform(-0.05, 0.05),
            np.array([4.7, 1.9, 1.6]),
        )
    else:
        n_taper = 6
        for i in range(n_taper):
            lat = -W / 2 + 0.35 + (W - 0.7) * i / (n_taper - 1)
            b.add_static(AgentType.TRAFFIC_CONE, x_obs + 2.5 * i, y_c + lat, 0.0)
        for i in range(1, 8):
            b.add_static(AgentType.TRAFFIC_CONE, x_obs + 2.5 * (n_taper - 1) + 3.0 * i, y_c + W / 2 - 0.35, 0.0)
        b.add_static(AgentType.BARRIER, x_obs + 20.0, y_c, 0.0)
        b.add_static(AgentType.CZONE_SIGN, x_obs - 8.0, y_c - W / 2 + 0.5, 0.0)
    b.no_spawn += [(main.fwd[k - 1], 0.0, s_obs + 80.0), (main.fwd[k], s0 - 10.0, s_obs + 40.0)]
    b.metadata.update(obstacle=kind, obstacle_s=_r(s_obs), maneuver="lane_change_left", expected_command="STRAIGHT")
    _populate(b, bg, peds)


def cut_in(b: SceneBuild, bg: int, peds: int) -> None:
    """A faster vehicle from the neighbouring lane cuts in ahead of the ego, which eases off to restore its gap."""
    rng = b.rng
    n_fwd = int(rng.integers(2, 4))
    limit = SPEED_LIMIT_50_KMH
    b.road = roads.straight_road(320.0, n_fwd, int(rng.integers(1, 3)), limit)
    main = b.road.roads["main"]
    k = int(rng.integers(n_fwd))
    k_from = k - 1 if k > 0 and (k == n_fwd - 1 or rng.random() < 0.5) else k + 1
    v_e = rng.uniform(8.0, 11.0)
    v_c = v_e + rng.uniform(1.0, 2.5)
    s0 = rng.uniform(15.0, 30.0)
    b.set_ego(b.path([main.fwd[k]]), s0, v_e, _fwd_route(main))
    size = np.array([4.6, 1.9, 1.6])
    gap0 = rng.uniform(8.0, 14.0)
    sc0 = s0 + b.ego_params.front_length + gap0 + size[0] / 2
    t_ci = rng.uniform(2.2, 3.5)
    length = v_c * rng.uniform(3.0, 4.0)
    s_lc = sc0 + v_c * t_ci
    sign = 1.0 if k_from < k else -1.0  # the cutter starts on the target lane's left when it comes from k-1
    path = b.path([main.fwd[k]], offsets=[(s_lc, s_lc + length, sign * W, 0.0)])
    b.add_vehicle(path, sc0, v_c, "scripted", size=size, speed_factor=min(v_c / limit, 1.2), idm=IDMParams(accel=1.0))
    b.no_spawn += [(main.fwd[k_from], 0.0, 1e9), (main.fwd[k], s0 - 10.0, s0 + 120.0)]
    b.metadata.update(cut_in_from_lane=k_from, cut_in_time_s=_r(t_ci), expected_command="STRAIGHT")
    _populate(b, bg, peds)


def pedestrian_crossing(b: SceneBuild, bg: int, peds: int) -> None:
    """Pedestrians cross a mid-block crosswalk; the ego yields before it."""
    rng = b.rng
    n_fwd, n_bwd = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    v_e = rng.uniform(7.0, 10.0)
    s0 = rng.uniform(10.0, 20.0)
    xc = s0 + v_e * 2.0 + rng.uniform(40.0, 60.0)
    b.road = roads.straight_road(300.0, n_fwd, n_bwd, SPEED_LIMIT_50_KMH, crosswalk_at=xc)
    main = b.road.roads["main"]
    k = int(rng.integers(n_fwd))
    b.set_ego(b.path([main.fwd[k]]), s0, v_e, _fwd_route(main))
    n_cross = int(rng.integers(1, 4))
    y_right, y_left = -n_fwd * W - 3.0, n_bwd * W + 3.0
    for i in range(n_cross):
        from_right = rng.random() < 0.6
        x = xc + 0.7 + 1.3 * i + 0.2 * rng.random()
        line = np.array([[x, y_right], [x, y_left]]) if from_right else np.array([[x, y_left], [x, y_right]])
        start = int(rng.uniform(10, 35)) + 6 * i
        xy, h, sp = b.walk_polyline(line, 0.0, rng.uniform(1.1, 1.6), start_step=start)
        b.add_walker(AgentType.PEDESTRIAN, xy, h, sp)
    b.no_spawn += [(main.fwd[k], s0 - 10.0, xc)]
    b.metadata.update(crosswalk_x=_r(xc), crossing_pedestrians=n_cross, expected_command="STRAIGHT")
    _populate(b, bg, peds)


def hard_brake(b: SceneBuild, bg: int, peds: int) -> None:
    """The lead vehicle brakes hard to a stop; the expert brakes hard too (beyond comfort) and stays clear."""
    rng = b.rng
    n_fwd = int(rng.integers(1, 3))
    limit = SPEED_LIMIT_50_KMH
    b.road = roads.straight_road(320.0, n_fwd, int(rng.integers(1, 3)), limit)
    main = b.road.roads["main"]
    k = int(rng.integers(n_fwd))
    v = rng.uniform(9.0, 12.5)
    s0 = rng.uniform(15.0, 30.0)
    b.set_ego(
        b.path([main.fwd[k]]),
        s0,
        v,
        _fwd_route(main),
        ExpertConfig(desired_speed_factor=min(v / limit + 0.02, 1.0), hard_brake_ok=True),
    )
    size = np.array([4.6, 1.9, 1.6])
    gap = v * rng.uniform(1.4, 1.9) + 4.0
    t_b = rng.uniform(2.5, 4.5)
    decel = rng.uniform(5.0, 7.0)
    override = np.full(b.num_steps, np.nan)
    override[int(round(t_b / b.dt)) :] = -decel
    b.add_vehicle(
        b.path([main.fwd[k]]),
        s0 + b.ego_params.front_length + gap + size[0] / 2,
        v,
        "scripted",
        size=size,
        speed_factor=min(v / limit + 0.02, 1.2),
        accel_override=override,
    )
    b.no_spawn += [(main.fwd[k], s0 - 15.0, s0 + 250.0)]
    b.metadata.update(brake_time_s=_r(t_b), lead_decel=_r(decel), expected_command="STRAIGHT")
    _populate(b, bg, peds)


#: Bench2Drive's YieldToEmergencyVehicle: the emergency vehicle drives 25 km/h faster than the ego (we use the speed
#: limit), starts about 26-27 m behind the trigger point in the 220 routes (we use 30-40 m between the centres).
EV_SPEED_INCREMENT = 25.0 / 3.6
EV_SIZE = (5.4, 2.05, 2.3)


def yield_emergency(b: SceneBuild, bg: int, peds: int) -> None:
    """An emergency vehicle closes in from behind in the ego's lane; the ego gives way by moving to the lane on its
    right and lets it pass. The route stays in the ego's lane (as Bench2Drive's does): the agent must decide to yield;
    the expert's path carries the lane change."""
    rng = b.rng
    n_fwd = int(rng.integers(2, 4))
    limit = SPEED_LIMIT_50_KMH
    b.road = roads.straight_road(320.0, n_fwd, int(rng.integers(1, 3)), limit)
    main = b.road.roads["main"]
    k = int(rng.integers(0, n_fwd - 1))  # yields to lane k + 1, on its right
    v_e = limit * rng.uniform(0.75, 0.9)
    s0 = rng.uniform(50.0, 70.0)  # room behind for the emergency vehicle
    s_start = s0 + v_e * rng.uniform(0.3, 0.8)
    length = max(30.0, v_e * 3.0)
    b.set_ego(_lane_change_path(b, main, k, k + 1, s_start, length), s0, v_e, _fwd_route(main))
    b.route_path = b.path([main.fwd[k]])
    v_ev = limit + EV_SPEED_INCREMENT
    gap = rng.uniform(30.0, 40.0)  # centre to centre
    ego_centre = s0 + (b.ego_params.front_length - b.ego_params.rear_length) / 2  # s0 is the rear axle's
    ev = b.add_vehicle(
        b.path([main.fwd[k]]),
        ego_centre - gap,
        v_ev,
        "scripted",
        size=np.array(EV_SIZE),
        speed_factor=v_ev / limit,
        idm=IDMParams(accel=3.0),
    )
    # Bench2Drive clears the emergency vehicle's lane of background traffic (RemoveRoadLane); the yield lane is kept
    # free beside and ahead of the ego so the expert's lane change is safe
    b.no_spawn += [(main.fwd[k], 0.0, 1e9), (main.fwd[k + 1], s0 - 40.0, s_start + length + 60.0)]
    b.metadata.update(
        emergency_vehicle=ev, emergency_gap_m=_r(gap), yield_lane=k + 1, maneuver="yield_right",
        expected_command="STRAIGHT",
    )  # fmt: skip
    _populate(b, bg, peds)


RECIPES = {
    "straight_road": straight_road,
    "curve": curve,
    "intersection": intersection,
    "t_junction": t_junction,
    "lane_change": lane_change,
    "merge": merge,
    "static_obstacle": static_obstacle,
    "cut_in": cut_in,
    "pedestrian_crossing": pedestrian_crossing,
    "hard_brake": hard_brake,
    "red_light": red_light,
    "yield_emergency": yield_emergency,  # last: the family code seeds scenes, so earlier families stay as they were
}
