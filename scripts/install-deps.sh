#!/usr/bin/env bash
# Installs every Debian package InfoMamba-dist needs to build, test and run.
# Idempotent: quiet and fast when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev libgtest-dev googletest
  openmpi-bin libopenmpi-dev
  libhdf5-dev
  libprotobuf-dev protobuf-compiler
  libtomlplusplus-dev
  zlib1g-dev
  iproute2
  slurm-wlm slurmctld slurmd slurm-client
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
