#!/usr/bin/env bash
# Runs every test of a built preset: ctest (unit, golden, integration, client tests).
# Services the tests need (redis-server) are started by ctest fixtures, see tests/CMakeLists.txt.
set -euo pipefail
preset="${1:-release}"
cd "$(dirname "$0")/.."
ctest --preset "$preset" -j "$(nproc)" --timeout 600
