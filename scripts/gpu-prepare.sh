#!/bin/sh
# Run here (Debian, with its package registry) before a session's GPU machine is used: the shared
# prepare.sh gathers the OpenCL loader, CLBlast and libyaml as .deb files into ./.device/; this adds
# what our CMake also needs and the lent machine may lack (pkg-config, zlib's headers).
# Then: device run with carry [".device"] and the command
#   source .device/on-device.sh && scripts/gpu-check.sh
set -eu
../shared/device/prepare.sh
(cd .device && apt-get download pkg-config pkgconf pkgconf-bin libpkgconf3 zlib1g-dev >/dev/null 2>&1) || {
  echo "gpu-prepare: apt-get download of pkg-config/zlib1g-dev failed" >&2
  exit 1
}
ls -1 .device
