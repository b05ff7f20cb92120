# Set-up and everyday targets. `make demo` and `make test` are the README's two commands: each creates the virtual
# environment on first use and installs everything needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision pins that install from local wheels on the project's machines; override for other platforms,
# e.g. `make TORCH_SPEC="torch torchvision" test`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= dev,viz
OUT ?= out
PYTEST_ARGS ?=

.PHONY: venv demo test lint format bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: venv
	$(BIN)/irlvla scenes generate --n 12 --seed 0 --out $(OUT)/scenes
	$(BIN)/irlvla scenes show $(OUT)/scenes --all --out $(OUT)/renders

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv
	$(BIN)/python benchmarks/bench_sim.py
	$(BIN)/python benchmarks/bench_epdms.py
	$(BIN)/python benchmarks/bench_b2d_metrics.py
	$(BIN)/python benchmarks/bench_model.py --preset tiny
	$(BIN)/python benchmarks/bench_latency.py --preset tiny --backend torch onnxruntime
	$(BIN)/python benchmarks/bench_carla_agent.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
