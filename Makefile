# The two commands a new user needs: `make demo` and `make test`.  Both install what is missing first.
.PHONY: deps bench-deps demo test lint unit integration bench plots soak clean

WEBAPPS ?= 3

deps:
	@scripts/install-deps.sh

demo: deps
	.venv/bin/disco demo --webapps $(WEBAPPS)

# Lint and types first (ruff, mypy --strict on discovery/), then every test: unit, integration (the
# package built and installed with pipx among them), and the Docker end-to-end suite.
test: deps lint
	.venv/bin/pytest

lint: deps
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

unit: deps
	.venv/bin/pytest tests/unit

integration: deps
	.venv/bin/pytest tests/integration

# What the benchmarks need beyond deps (wrk, matplotlib); bench/compare.py and bench/scale.py check their tools first.
bench-deps: deps
	@scripts/install-bench-deps.sh

bench: bench-deps
	.venv/bin/python bench/compare.py
	.venv/bin/python bench/scale.py
	.venv/bin/python bench/fanin.py

# The seeded fault soak (issue 19): SOAK_MINUTES of faults, a random seed unless SOAK_SEED is given.
SOAK_MINUTES ?= 10
soak: deps
	.venv/bin/python bench/soak.py --minutes $(SOAK_MINUTES) $(if $(SOAK_SEED),--seed $(SOAK_SEED)) $(if $(SOAK_DOCKERD),--dockerd)

# Re-draw docs/img/*.png from bench/results/*.json (each benchmark also draws its own at the end).
plots: bench-deps
	.venv/bin/python bench/plots.py

clean:
	rm -rf .venv run .pytest_cache
