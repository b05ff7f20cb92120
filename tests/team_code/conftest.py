"""Make `import carla` work in these tests: the real client wheel when installed, else the product's stand-in
(`sim.closed_loop.fake_carla`, what the closed-loop runner gives agents on machines without CARLA).

Set IRLVLA_FAKE_CARLA=1 to force the stand-in even where the wheel is installed (CI runs both ways).
"""

from __future__ import annotations

import os

from sim.closed_loop import shims

shims.install(force_fake_carla=os.environ.get("IRLVLA_FAKE_CARLA") == "1")
