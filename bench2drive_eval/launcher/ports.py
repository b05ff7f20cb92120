"""Free, spaced TCP port blocks for CARLA (RPC port plus its two streaming ports) and the traffic manager."""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
_reserved: set[int] = set()  # ports handed out by this process and not yet released


def port_is_free(port: int) -> bool:
    """True if nothing listens on ``port`` on any interface (bound as CARLA binds: all addresses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def reserve_block(start: int, span: int = 3, step: int | None = None, limit: int = 65535) -> int:
    """First ``P >= start`` (advancing by ``step``) with ``P .. P+span-1`` free here and not reserved; reserves it."""
    if span < 1 or start < 1024:
        raise ValueError(f"need span >= 1 and start >= 1024, got span={span} start={start}")
    step = step or span
    with _lock:
        port = start
        while port + span - 1 <= limit:
            block = range(port, port + span)
            if not any(p in _reserved for p in block) and all(port_is_free(p) for p in block):
                _reserved.update(block)
                return port
            port += step
    raise RuntimeError(f"no free block of {span} ports from {start}")


def release_block(port: int, span: int = 3) -> None:
    with _lock:
        _reserved.difference_update(range(port, port + span))
