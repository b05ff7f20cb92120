"""Token -> scene file of a scene folder, by file name first, reading every file only when a token is not found."""

from __future__ import annotations

import logging
from pathlib import Path

from sim.scene import Scene
from sim.scene_io import SUFFIX, list_scene_files, load_scene

logger = logging.getLogger(__name__)


class SceneIndex:
    """Scenes of one folder by token (`<token>.scene.json.gz` is found without opening the others)."""

    def __init__(self, folder: Path) -> None:
        self.files = list_scene_files(folder)
        self.by_stem = {p.name[: -len(SUFFIX)]: p for p in self.files}
        self._full: dict[str, Path] | None = None

    def load(self, token: str) -> Scene:
        p = self.by_stem.get(token)
        if p is not None:
            scene = load_scene(p)
            if scene.token == token:
                return scene
        if self._full is None:
            self._full = {}
            for f in self.files:
                try:
                    self._full[load_scene(f).token] = f
                except Exception as exc:  # a broken file fails only the tokens that need it
                    logger.warning("cannot read scene file %s: %s", f, exc)
        if token not in self._full:
            raise KeyError(f"no scene with token {token!r} in the scene folder")
        return load_scene(self._full[token])
