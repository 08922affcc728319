#!/usr/bin/env bash
# Compiles pyproject's dependency sets into locked, hashed requirement files.
# dev.txt holds every set (what tests run with); each other set is compiled against it, so a
# package has the same version in every file. No index or find-links line may land in a lock.
set -euo pipefail
cd "$(dirname "$0")/.."
uv="${UV:-.tools/bin/uv}"
compile() {
    "$uv" pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
        --python-platform x86_64-unknown-linux-gnu --no-emit-index-url --no-emit-find-links \
        --custom-compile-command "make lock" "$@"
}
compile --all-extras -o requirements/dev.txt
for set in ml service infra; do
    compile --extra "$set" -c requirements/dev.txt -o "requirements/$set.txt"
done
if grep -nE -- '--(extra-)?index-url|--find-links|://' requirements/*.txt; then
    echo "lock: a registry address landed in a requirement file (above); remove it" >&2
    exit 1
fi
