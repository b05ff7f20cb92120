"""Make `import carla` work in these tests: the real client wheel when installed, else the local fake.

Set IRLVLA_FAKE_CARLA=1 to force the fake even where the wheel is installed (CI runs both ways).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FAKE_DIR = Path(__file__).resolve().parent / "fake_carla"


def _use_fake() -> bool:
    if os.environ.get("IRLVLA_FAKE_CARLA") == "1":
        return True
    try:
        import carla  # noqa: F401
    except ImportError:
        return True
    return False


if _use_fake():
    sys.modules.pop("carla", None)
    sys.path.insert(0, str(FAKE_DIR))
