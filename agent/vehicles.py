"""Ego vehicle geometry of the two benchmarks, the one place these numbers are written.

NAVSIM's ego is nuPlan's Chrysler Pacifica (`get_pacifica_parameters`): lengths are measured from the rear axle.
Bench2Drive's ego is CARLA's Lincoln MKZ 2020 (`vehicle.lincoln.mkz_2020`): its box centre is the CARLA vehicle
origin, 1.39 m ahead of the rear axle (wheelbase 2.87 m, axles symmetric about the centre to within a few cm).
"""

from __future__ import annotations

#: nuPlan Pacifica (NAVSIM): width, front and rear length from the rear axle, wheelbase, height (m).
PACIFICA_WIDTH = 2.297
PACIFICA_FRONT_LENGTH = 4.049
PACIFICA_REAR_LENGTH = 1.127
PACIFICA_WHEELBASE = 3.089
PACIFICA_HEIGHT = 1.777
#: the Pacifica's box centre lies (4.049 - 1.127) / 2 = 1.461 m ahead of the rear axle
PACIFICA_REAR_AXLE_TO_CENTER = (PACIFICA_FRONT_LENGTH - PACIFICA_REAR_LENGTH) / 2.0

#: Lincoln MKZ 2020 (Bench2Drive): box length and width, wheelbase (m), box centre ahead of the rear axle (m).
MKZ_LENGTH = 4.89
MKZ_WIDTH = 1.84
MKZ_WHEELBASE = 2.87
MKZ_REAR_AXLE_TO_CENTER = 1.39
