"""VLM command guidance latency per refresh (tiny backend unless --model-path is given). Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.model.vlm import VLMCommandGuidance, VLMConfig
from agent.types import NavigationCommand


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-path", default=None, help="local pretrained VLM folder (default: tiny backend)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend = {"backend": "pretrained", "model_path": args.model_path} if args.model_path else {}
    result: dict[str, object] = {"threads": args.threads, "backend": "pretrained" if args.model_path else "tiny"}
    for mode in ("likelihood", "generate"):
        for h, w in ((900, 1600), (256, 704)):
            rng = np.random.default_rng(0)
            images = {v: rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for v in VLMConfig().views}
            t0 = time.perf_counter()
            guidance = VLMCommandGuidance(VLMConfig(refresh_every=1, mode=mode, **backend))
            build_s = time.perf_counter() - t0
            lat = []
            for tick in range(args.repeats + 3):
                t0 = time.perf_counter()
                guidance.commands(images, 7.0, NavigationCommand.LEFT, tick)
                lat.append(1000 * (time.perf_counter() - t0))
            guidance.close()
            result[f"{mode}_ms_{w}x{h}"] = {"median": round(float(np.median(lat[3:])), 2), "build_s": round(build_s, 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
