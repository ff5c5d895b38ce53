#!/bin/bash
# One command for a machine with a GPU (README.md, Portability): finds the vendor's OpenCL driver,
# builds, runs ctest (without the oclgrind label) and `datamux bench` on device D (default nvidia:0),
# and leaves each log in $OUT (the device tool's folder), else runs/gpu-check:
#   source .device/on-device.sh && scripts/gpu-check.sh [D]
# Not yet run on a GPU: read what it prints.
set -uo pipefail
dev=${1:-nvidia:0}
out=${OUT:-runs/gpu-check}
mkdir -p "$out"
root=/tmp/dmx-root
# on-device.sh unpacks .device/*.deb into $root and registers libnvidia-opencl.so.1 when it finds it in
# two places or by `find /`; look also where ldconfig and other driver layouts put it
if ! clinfo -l 2>/dev/null | grep -q Platform; then
  for lib in $(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so/ {print $NF}') \
    /usr/lib64/libnvidia-opencl.so.1 /usr/lib/x86_64-linux-gnu/nvidia/current/libnvidia-opencl.so.1 \
    /usr/local/nvidia/lib/libnvidia-opencl.so.1; do
    if [ -e "$lib" ]; then
      mkdir -p "$root/vendors" && echo "$lib" >"$root/vendors/nvidia.icd"
      export OCL_ICD_VENDORS="$root/vendors"
      echo "gpu-check: OpenCL ICD $lib"
      break
    fi
  done
fi
# pkg-config from the carried .deb looks for .pc files under the real /usr unless told
export PKG_CONFIG_PATH="$root/usr/lib/x86_64-linux-gnu/pkgconfig:$root/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
{
  date -u
  nvidia-smi -L 2>&1
  clinfo -l 2>&1
} | tee "$out/machine.txt"
echo "gpu-check: building (log: $out/build.txt)"
if ! { cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release && cmake --build build-gpu -j "$(nproc)"; } >"$out/build.txt" 2>&1; then
  tail -n 40 "$out/build.txt"
  exit 1
fi
build-gpu/datamux devices 2>&1 | tee "$out/devices.txt"
build-gpu/datamux devices --device "$dev" >/dev/null || exit 1
export DATAMUX_DEVICE="$dev"
[ -d "${DATAMUX_DATA:-}" ] || { [ -d shared/data ] && export DATAMUX_DATA="$PWD/shared/data"; }
echo "gpu-check: ctest on $dev (log: $out/ctest.txt)"
(cd build-gpu && timeout 420 ctest -LE oclgrind -j 8 --timeout 300 --output-on-failure) >"$out/ctest.txt" 2>&1
echo "gpu-check: ctest exit $?"
grep -E "tests passed|Failed|\*\*\*" "$out/ctest.txt" | head -n 40
echo "gpu-check: bench (logs: $out/bench-*.txt)"
timeout 120 build-gpu/datamux bench --gemm --device "$dev" --max-seconds 2 2>&1 | tee "$out/bench-gemm.txt" | tail -n 20
timeout 120 build-gpu/datamux bench experiments/quickstart.yaml -N 1,2,5,10 --batches 20 --device "$dev" \
  --out "$out/bench" 2>&1 | tee "$out/bench-throughput.txt" | tail -n 15
