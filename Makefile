# The two set-up commands of the README: `make demo` and `make test`. Both bootstrap first.
.PHONY: bootstrap demo serve test test-fast lint bench generate stack

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/hypermind-obs demo

serve: bootstrap
	.venv/bin/hypermind-obs serve

test: bootstrap
	.venv/bin/ruff check hypermindlabs tests bench
	.venv/bin/mypy
	.venv/bin/python -m pytest -n auto --dist loadgroup -q

test-fast: bootstrap
	.venv/bin/python -m pytest -q -x -m "not browser"

lint: bootstrap
	.venv/bin/ruff check hypermindlabs tests bench
	.venv/bin/mypy

bench: bootstrap
	.venv/bin/python bench/ingest.py

# Regenerate the committed generated files (CI fails on a diff): Grafana dashboards and provisioning,
# Prometheus rules, prometheus.yml and alertmanager.yml.
generate: bootstrap
	.venv/bin/python grafana/generate.py
	.venv/bin/python -m hypermindlabs.generate --out prometheus

# Prometheus + Alertmanager (Debian binaries) with the generated files, against a running app.
stack: bootstrap
	.venv/bin/hypermind-obs stack
