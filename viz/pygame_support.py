"""pygame is optional (the `viz` extra): imported here only, lazily, with the headless (SDL dummy) switch."""

from __future__ import annotations

import os


def import_pygame(headless: bool):
    """Import and initialise pygame; `headless` selects SDL's dummy video driver (no window, no display needed).

    The driver must be chosen before pygame's display starts, so a live window and a headless HUD cannot share one
    process; asking for a window where none can open is an error that says so.
    """
    if headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as e:
        raise ImportError("the HUD needs pygame: pip install 'irlvla[viz]'") from e
    pygame.display.init()
    pygame.font.init()
    return pygame
