#!/usr/bin/env bash
# Bring a fresh machine to the point where `make demo` and `make test` run: the virtual
# environment at .venv/ with the package and its test dependencies, the npm packages, and
# (as root, when missing) the Debian packages the real-component tests use.
# Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
want_system=${HYPERMIND_SYSTEM_PACKAGES:-auto}

# 1. Debian packages: prometheus, promtool, alertmanager, amtool, chromium, docker-compose (only its
#    `config` validation of docker-compose.yml is used by the tests: no container engine needed).
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ] && [ "$want_system" != "no" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: not root: skipping Debian packages ${missing[*]} (tests needing them skip, or fail under CI=true)" >&2
  fi
fi

# 2. Python virtual environment with the package (editable) and the test dependencies.
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.hypermind-installed
digest=$(sha256sum pyproject.toml | cut -c1-64)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "bootstrap: installing Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  echo "$digest" > "$stamp"
fi

# 3. npm packages (chart library for the web UI), when the project declares them.
if [ -f package.json ]; then
  nstamp=node_modules/.hypermind-installed
  ndigest=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-64)
  if [ ! -f "$nstamp" ] || [ "$(cat "$nstamp")" != "$ndigest" ]; then
    echo "bootstrap: installing npm packages"
    if [ -f package-lock.json ]; then npm ci --silent --no-audit --no-fund; else npm install --silent --no-audit --no-fund; fi
    echo "$ndigest" > "$nstamp"
  fi
fi
