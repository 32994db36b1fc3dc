#!/usr/bin/env bash
# Offline validation of the deployment artefacts (no Docker engine, no cluster needed):
# hadolint on the Dockerfile, every Kubernetes manifest against the schemas shipped by
# kubernetes-validate (strict), the ServiceMonitor/PrometheusRule CRD shapes, the
# kustomizations (`kubectl kustomize` when kubectl is installed), the wiring and Pod Security
# "restricted". See manifests.py. (That the PrometheusRule and the dashboards' ConfigMaps are
# the mixin's output is mixin/check.sh's.)
# Prints `N passed, M failed`; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r deploy/check/requirements.txt

exec python3 deploy/check/manifests.py
