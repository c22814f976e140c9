#!/usr/bin/env bash
# Refresh the locks from the ranges in pyproject.toml: every package pinned, with the hash of each of its
# files, for every platform and every Python the project supports (a universal resolution).
#   requirements.lock       what `bookworm` needs: the Dockerfile installs it
#   requirements-test.lock  that, plus the `test` extra: CI and the README's commands install it
# The test lock is constrained by the runtime lock, so the two never pin a package differently.
#
#   scripts/lock.sh                          newest versions the ranges allow, for every package
#   scripts/lock.sh --upgrade-package NAME   only NAME (repeatable); the other pins stay where they fit
#   scripts/lock.sh --no-upgrade             keep every pin that still fits (after adding a dependency)
#
# Needs python3 and the package index; uv (pinned below) is installed into a throw-away virtualenv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
UV_VERSION="0.13.9"

TOOLS="$(mktemp -d -t bookworm-lock.XXXXXX)"
trap 'rm -rf "$TOOLS"' EXIT
"$PYTHON" -m venv "$TOOLS/venv"
"$TOOLS/venv/bin/pip" install --quiet "uv==$UV_VERSION"

if [ "$#" -eq 0 ]; then
  set -- --upgrade
elif [ "$1" = "--no-upgrade" ]; then
  shift
fi

compile() {
  "$TOOLS/venv/bin/uv" pip compile pyproject.toml --quiet --universal --generate-hashes \
    --custom-compile-command "scripts/lock.sh" "$@"
}

cd "$ROOT"
compile -o requirements.lock "$@"
compile --extra test -c requirements.lock -o requirements-test.lock "$@"
echo "requirements.lock: $(grep -c '^[a-z0-9]' requirements.lock) packages;" \
  "requirements-test.lock: $(grep -c '^[a-z0-9]' requirements-test.lock) packages"
