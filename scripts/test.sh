#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite (unit, integration, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The layers first: an import that breaks one fails the build before any test runs (.importlinter).
.venv/bin/lint-imports --no-cache
# The types: the product packages, with the settings in pyproject.toml [tool.mypy] (strict).
.venv/bin/mypy
# The contract: the merged OpenAPI document (every plugin's fragment) is valid OpenAPI 3.1.
openapi_json="$(mktemp --suffix=.json)"
.venv/bin/python -c 'import json, sys
from controlplane.http.openapi import build_document
from controlplane.plugin_list import PLUGINS
json.dump(build_document(p.package for p in PLUGINS), sys.stdout)' > "$openapi_json"
.venv/bin/openapi-spec-validator "$openapi_json"
rm -f "$openapi_json"
exec .venv/bin/python -m pytest "$@"
