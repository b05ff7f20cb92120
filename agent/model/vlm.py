"""VLM command guidance: a vision-language model picks the speed plan (13) and path plan (9) commands.

The commands are chosen by teacher-forced likelihood: every allowed command is scored as the answer to a Senna-style
multi-view prompt and the probabilities are a softmax over exactly the allowed commands, so the result is always a
valid command (never a substring match on free text). The answer format is "SPEED, PATH": the speed command is scored
right after the prompt (with its "," so "Mild Accel" cannot win on a prefix of "Mild Accel Linear"), then the path
command is scored after the chosen speed (ending with EOS), which is how a VLM fine-tuned on that format was trained.
The prompt and images are encoded once; each plan type is one batched forward that reuses the prompt's KV cache.
Greedy generation plus the robust parser (`vlm_parse`) is the second mode.

The VLM runs at its own rate: `commands()` recomputes every `refresh_every` planner ticks and returns the latched
result in between; in background mode a worker thread does the work and the caller never waits after the first call.
"""

from __future__ import annotations

import copy
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agent.contract import CommandResult, commands_one_hot
from agent.model.vlm_backend import VLMBackend, build_backend
from agent.model.vlm_config import VLMConfig
from agent.model.vlm_labels import CommandLabelThresholds, commands_from_trajectory
from agent.model.vlm_parse import parse_commands, resolve_commands
from agent.model.vlm_prompt import ANSWER_SEPARATOR, B2D_VIEWS, build_prompt
from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS, NavigationCommand, PathPlan, SpeedPlan

__all__ = [
    "B2D_VIEWS",
    "CommandLabelThresholds",
    "CommandResult",
    "VLMCommandGuidance",
    "VLMConfig",
    "build_prompt",
    "commands_from_trajectory",
    "commands_one_hot",
    "parse_commands",
]

log = logging.getLogger(__name__)


@dataclass
class _Prefix:
    """A scored context: model inputs so far, the KV cache over them (or None) and the next-token log-probs."""

    inputs: dict[str, torch.Tensor]
    cache: Any
    next_logprobs: torch.Tensor  # (V,)


class VLMCommandGuidance:
    """Latched (optionally background) VLM command guidance; see the module docstring."""

    def __init__(self, config: VLMConfig | None = None) -> None:
        self.config = config or VLMConfig()
        self.backend: VLMBackend = build_backend(self.config)
        self.num_vlm_calls = 0
        self._latched: CommandResult | None = None
        self._last_request_tick: int | None = None
        self._episode = 0  # bumped by reset(); a worker result from an older episode is dropped
        self._lock = threading.Lock()
        self._requests: queue.Queue = queue.Queue(maxsize=1)
        self._done = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_error: BaseException | None = None
        self._cache_ok = self.config.reuse_prefix_cache
        self._speed_ids = [self.backend.text_ids(f"{name}{ANSWER_SEPARATOR}") for name in SPEED_PLAN_COMMANDS]
        if self.config.background:
            self._worker = threading.Thread(target=self._work, name="vlm-command-guidance", daemon=True)
            self._worker.start()

    # ------------------------------------------------------------------------------------------------ public API
    def commands(
        self, images: dict[str, np.ndarray], ego_speed: float, nav_command: NavigationCommand, tick: int
    ) -> CommandResult:
        """The command for planner tick `tick`: fresh on a refresh tick, else the latched one (see module doc)."""
        tick = int(tick)
        with self._lock:
            last, latched = self._last_request_tick, self._latched
        if last is not None and tick < last:  # the tick counter went back: a new episode
            self.reset()
            last = latched = None
        if latched is not None and last is not None and tick - last < self.config.refresh_every:
            return latched
        self._check_inputs(images, ego_speed)
        if not self.config.background:
            result = self._run(images, ego_speed, nav_command, tick)
            with self._lock:
                self._latched, self._last_request_tick = result, tick
            return result
        if self._stop.is_set():
            raise RuntimeError("VLMCommandGuidance is closed")
        frames = {k: np.array(images[k], copy=True) for k in self.config.views}
        with self._lock:
            self._last_request_tick = tick
            if self._latched is None:
                self.last_error = None
            request = (self._episode, (frames, float(ego_speed), nav_command, tick))
        self._submit(request)
        with self._lock:
            while self._latched is None:
                if self.last_error is not None:
                    raise RuntimeError("VLM worker failed before producing a first result") from self.last_error
                if self._worker is None or not self._worker.is_alive():
                    raise RuntimeError("VLM worker thread is not running")
                self._done.wait(timeout=0.1)
            return self._latched

    def score_commands(
        self, images: dict[str, np.ndarray], ego_speed: float, nav_command: NavigationCommand, tick: int = -1
    ) -> CommandResult:
        """Likelihood scores of every allowed command for these inputs, now (no latching, whatever the mode)."""
        self._check_inputs(images, ego_speed)
        t0 = time.perf_counter()
        with torch.inference_mode():
            return self._score(images, ego_speed, nav_command, tick, t0)

    def reset(self) -> None:
        """Forget the latched command (new episode, or independent frames such as NAVSIM scenes)."""
        with self._lock:
            self._latched, self._last_request_tick = None, None
            self._episode += 1
        try:
            self._requests.get_nowait()
        except queue.Empty:
            pass

    @property
    def latched(self) -> CommandResult | None:
        return self._latched

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker thread (idempotent)."""
        self._stop.set()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(timeout)
            if worker.is_alive():
                log.warning("VLM worker did not stop within %.1f s", timeout)

    def __enter__(self) -> VLMCommandGuidance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ internals
    def _check_inputs(self, images: dict[str, np.ndarray], ego_speed: float) -> None:
        if not isinstance(images, dict):
            raise TypeError(f"images must be a dict camera name -> (H, W, 3) uint8, got {type(images).__name__}")
        missing = [v for v in self.config.views if v not in images]
        if missing:
            raise ValueError(f"VLM needs image(s) for view(s) {missing}; got {sorted(images)}")
        for v in self.config.views:
            img = images[v]
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(
                    f"VLM image {v} must be an (H, W, 3) uint8 array, got {getattr(img, 'dtype', type(img))} "
                    f"{getattr(img, 'shape', '')}"
                )
        if not math.isfinite(float(ego_speed)):
            raise ValueError(f"ego_speed must be finite, got {ego_speed!r}")

    def _run(self, images, ego_speed, nav_command, tick) -> CommandResult:
        t0 = time.perf_counter()
        self.num_vlm_calls += 1
        with torch.inference_mode():
            if self.config.mode == "likelihood":
                return self._score(images, ego_speed, nav_command, tick, t0)
            return self._generate(images, ego_speed, nav_command, tick, t0)

    def _submit(self, request) -> None:
        """Queue the newest request, dropping a pending older one (the worker always works on the latest)."""
        while True:
            try:
                self._requests.put_nowait(request)
                return
            except queue.Full:
                try:
                    self._requests.get_nowait()
                except queue.Empty:
                    pass

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                episode, request = self._requests.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                result = self._run(*request)
            except Exception as exc:  # keep driving on the latched command
                log.exception("VLM refresh for tick %s failed; keeping the latched command", request[3])
                with self._lock:
                    self.last_error = exc
                    self._done.notify_all()
                continue
            with self._lock:
                if episode == self._episode:
                    self._latched = result
                self._done.notify_all()

    # ---- likelihood scoring
    def _forward(self, inputs: dict[str, torch.Tensor], cache: Any, last_only: bool):
        b = self.backend
        kwargs: dict[str, Any] = dict(inputs)
        if cache is not None:
            kwargs[b.cache_kwarg] = cache
        if last_only and b.keep_kwarg is not None:
            kwargs[b.keep_kwarg] = 1
        out = b.model(**kwargs, use_cache=self._cache_ok)
        new_cache = getattr(out, "cache", None) if b.cache_kwarg == "cache" else getattr(out, "past_key_values", None)
        return out.logits, new_cache

    def _prefill(self, inputs: dict[str, torch.Tensor]) -> _Prefix:
        if not self._cache_ok:
            return _Prefix(inputs, None, torch.empty(0))
        logits, cache = self._forward(inputs, None, last_only=True)
        return _Prefix(inputs, cache, torch.log_softmax(logits[0, -1].float(), -1))

    def _extend(self, prefix: _Prefix, ids: list[int]) -> _Prefix:
        """The prefix followed by `ids` (e.g. the chosen speed answer before scoring paths)."""
        new_ids = torch.tensor([ids], device=prefix.inputs["input_ids"].device)
        inputs = _append_tokens(prefix.inputs, new_ids)
        if prefix.cache is None:
            return _Prefix(inputs, None, torch.empty(0))
        logits, cache = self._forward({"input_ids": new_ids}, copy.deepcopy(prefix.cache), last_only=True)
        return _Prefix(inputs, cache, torch.log_softmax(logits[0, -1].float(), -1))

    def _candidate_logliks(self, prefix: _Prefix, candidates: list[list[int]]) -> np.ndarray:
        """Teacher-forced sum (or mean) of log p(candidate tokens | prefix), one batched forward for all."""
        if any(not c for c in candidates):
            raise ValueError("empty candidate answer")
        n, width = len(candidates), max(len(c) for c in candidates)
        dev = prefix.inputs["input_ids"].device
        ids = torch.full((n, width), self.backend.pad_id, dtype=torch.long, device=dev)
        mask = torch.zeros((n, width), dtype=torch.bool, device=dev)
        for i, c in enumerate(candidates):  # right padding: pads come after every real token, so causality hides them
            ids[i, : len(c)] = torch.tensor(c, device=dev)
            mask[i, : len(c)] = True
        if prefix.cache is not None:
            cache = copy.deepcopy(prefix.cache)
            cache.batch_repeat_interleave(n)
            logits, _ = self._forward({"input_ids": ids}, cache, last_only=False)
            logp = torch.log_softmax(logits.float(), -1)  # (n, width, V): position t predicts token t + 1
            first = prefix.next_logprobs[ids[:, 0]]
            rest = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
            token_lp = torch.cat([first[:, None], rest], 1)
        else:
            token_lp = self._full_forward_logprobs(prefix, ids)
        token_lp = token_lp.masked_fill(~mask, 0.0)
        total = token_lp.sum(1)
        if self.config.length_normalize:
            total = total / mask.sum(1)
        return total.double().cpu().numpy()

    def _full_forward_logprobs(self, prefix: _Prefix, ids: torch.Tensor) -> torch.Tensor:
        """Per-token log-probs of `ids` after the prefix by one batched forward over prompt + candidates."""
        width = ids.shape[1]
        p = prefix.inputs["input_ids"].shape[1]
        batch = _append_tokens(prefix.inputs, ids)
        logits, _ = self._forward(batch, None, last_only=False)
        logp = torch.log_softmax(logits[:, p - 1 : p + width - 1].float(), -1)
        return logp.gather(-1, ids[..., None])[..., 0]

    def _score(self, images, ego_speed, nav_command, tick, t0) -> CommandResult:
        inputs = self.backend.prepare(images, ego_speed, NavigationCommand(int(nav_command)))
        try:
            return self._score_inputs(inputs, tick, t0)
        except Exception:
            if not self._cache_ok:
                raise
            log.warning("scoring on the prompt's KV cache failed; falling back to full batched forwards", exc_info=True)
            self._cache_ok = False
            return self._score_inputs(inputs, tick, t0)

    def _score_inputs(self, inputs, tick, t0) -> CommandResult:
        prefix = self._prefill(inputs)
        speed_ll = self._candidate_logliks(prefix, self._speed_ids)
        speed = SpeedPlan(int(np.argmax(speed_ll)))
        speed_answer = self._speed_ids[speed]
        after_speed = self._extend(prefix, speed_answer)
        path_ids = [self._path_ids(SPEED_PLAN_COMMANDS[speed], speed_answer, p) for p in PATH_PLAN_COMMANDS]
        path_ll = self._candidate_logliks(after_speed, path_ids)
        path = PathPlan(int(np.argmax(path_ll)))
        return CommandResult(
            speed,
            path,
            _softmax(speed_ll),
            _softmax(path_ll),
            "likelihood",
            1000.0 * (time.perf_counter() - t0),
            tick,
            f"{SPEED_PLAN_COMMANDS[speed]}{ANSWER_SEPARATOR} {PATH_PLAN_COMMANDS[path]}",
            {"speed_loglik": speed_ll, "path_loglik": path_ll, "prompt_tokens": int(inputs["input_ids"].shape[1])},
        )

    def _path_ids(self, speed_name: str, speed_ids: list[int], path_name: str) -> list[int]:
        """Path answer tokens as they follow "SPEED," in the joint answer (tokenisers merge across spaces), + EOS."""
        b = self.backend
        joint = b.text_ids(f"{speed_name}{ANSWER_SEPARATOR} {path_name}")
        tail = joint[len(speed_ids) :] if joint[: len(speed_ids)] == speed_ids else b.text_ids(f" {path_name}")
        return tail + [b.eos_id]

    # ---- generation
    def _generate(self, images, ego_speed, nav_command, tick, t0) -> CommandResult:
        b = self.backend
        inputs = b.prepare(images, ego_speed, NavigationCommand(int(nav_command)))
        out = b.model.generate(
            **inputs,
            max_new_tokens=self.config.max_new_tokens,
            do_sample=False,
            pad_token_id=b.pad_id,
            eos_token_id=b.eos_id,
        )
        text = b.decode(out[0, inputs["input_ids"].shape[1] :].tolist())
        speed, path, used_fallback = resolve_commands(text)
        source = "fallback" if used_fallback else "generation"
        return CommandResult.certain(speed, path, source, 1000.0 * (time.perf_counter() - t0), tick, text)


def _append_tokens(inputs: dict[str, torch.Tensor], ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Model inputs for one prompt (batch 1) followed by each row of `ids` (n, w): a batch of n sequences.

    Per-token tensors (shape (1, P, ...), like attention_mask or Qwen2-VL's mm_token_type_ids) are extended with ones
    (the mask) or zeros (text-token types); per-image tensors (pixel values, grids) are repeated n times.
    """
    n, w = ids.shape
    seq = inputs["input_ids"]
    out: dict[str, torch.Tensor] = {}
    for k, v in inputs.items():
        if k == "input_ids":
            out[k] = torch.cat([seq.expand(n, -1), ids], 1)
        elif v.dim() >= 2 and v.shape[:2] == seq.shape:
            fill = torch.ones if k == "attention_mask" else torch.zeros
            tail = fill((n, w, *v.shape[2:]), dtype=v.dtype, device=v.device)
            out[k] = torch.cat([v.expand(n, *v.shape[1:]), tail], 1)
        else:
            out[k] = torch.cat([v] * n, 0)
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()
