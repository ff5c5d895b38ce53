#!/bin/sh
# Installs the Debian packages DataMUX-CL needs, only those that are missing,
# and registers Oclgrind's ICD (Debian's package ships the library but no
# /etc/OpenCL/vendors entry, so without it no OpenCL program can see it).
set -eu
pkgs="build-essential cmake pkg-config ocl-icd-opencl-dev opencl-headers pocl-opencl-icd libclblast-dev clblast-utils libyaml-dev zlib1g-dev libopenblas-dev dataset-fashion-mnist clinfo oclgrind libopenmpi-dev openmpi-bin gnuplot-nox"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if [ -n "$missing" ]; then
  echo "installing:$missing"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
fi
icd=/etc/OpenCL/vendors/oclgrind.icd
lib=/usr/lib/oclgrind/liboclgrind-rt-icd.so
if [ ! -e "$icd" ]; then
  if [ ! -e "$lib" ]; then
    echo "install-deps: $lib is missing after installing oclgrind; check the package (dpkg -L oclgrind)" >&2
    exit 1
  fi
  echo "registering Oclgrind's ICD in $icd"
  $sudo mkdir -p /etc/OpenCL/vendors
  echo "$lib" | $sudo tee "$icd" >/dev/null
fi
