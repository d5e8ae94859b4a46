#!/usr/bin/env bash
# Builds bench/gpu/dist/sparserm-gpu-check.tar.xz: everything bench/gpu-check.ts needs on a Linux x86-64 machine
# with no package registry (e.g. a rented GPU box): the engine + bench bundled into one file by esbuild, the Node
# binary, onnxruntime-node's JS and its linux-x64 native library (with the WebGPU provider), and the Vulkan loader
# .deb (Dawn reaches NVIDIA/AMD/Intel GPUs through Vulkan on Linux). Unpack and run:
#   tar xJf sparserm-gpu-check.tar.xz && cd sparserm-gpu-check && ./run.sh [--ep auto|cuda|webgpu|cpu] [--quick] [--out FILE]
# The bundle is build output (gitignored), never committed. Usage: bench/gpu/make-bundle.sh (from anywhere).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/bench/gpu/dist"
stage="$out/sparserm-gpu-check"
rm -rf "$stage" && mkdir -p "$stage/node_modules" "$stage/debs"
cd "$root"

# 1) engine + bench in one ESM file. onnxruntime-node stays external: it loads its native binding by path.
npx esbuild bench/gpu-check.ts --bundle --platform=node --format=esm --target=node20 --outfile="$stage/gpu-check.mjs" \
  --external:onnxruntime-node --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
# ort.ts starts workers from ./ort-worker.mjs beside it (not used by the bench, shipped so the path resolves).
cp main/engine/runtime/ort-worker.mjs "$stage/"

# 2) onnxruntime-node: package.json + JS + the linux-x64 native library only (the npm package holds every platform).
ortSrc=node_modules/onnxruntime-node
ortDst="$stage/node_modules/onnxruntime-node"
mkdir -p "$ortDst/bin/napi-v6/linux/x64"
cp "$ortSrc/package.json" "$ortDst/"
cp -r "$ortSrc/dist" "$ortSrc/lib" "$ortDst/"
cp "$ortSrc"/bin/napi-v6/linux/x64/* "$ortDst/bin/napi-v6/linux/x64/"
mkdir -p "$stage/node_modules/onnxruntime-common"
cp -r node_modules/onnxruntime-common/package.json node_modules/onnxruntime-common/dist "$stage/node_modules/onnxruntime-common/"

# 3) the Node binary this project runs on (Node 20; x86-64 glibc).
cp "$(command -v node)" "$stage/node"

# 4) the Vulkan loader (amd64 .deb, unpacked at run time when the machine lacks it). Best effort: without network
#    the bundle is still built, and run.sh says the loader is missing.
if ! (cd "$stage/debs" && apt-get download libvulkan1:amd64 >/dev/null 2>&1); then
  echo "warning: could not download libvulkan1 (no network?); the bundle relies on the machine's Vulkan loader" >&2
fi

cat >"$stage/run.sh" <<'EOF'
#!/usr/bin/env bash
# Runs the GPU check with the bundled Node. Installs the bundled Vulkan loader first when the machine has none
# (needs root; NVIDIA containers also need the driver's Vulkan ICD, usually under /usr/local/nvidia or /usr/share).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
  for f in "$here"/debs/*.deb; do [ -e "$f" ] && dpkg -x "$f" / 2>/dev/null; done
  ldconfig 2>/dev/null || true
fi
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$icd" ] && export VK_DRIVER_FILES="$icd" && break
  done
fi
exec "$here/node" "$here/gpu-check.mjs" "$@"
EOF
chmod +x "$stage/run.sh" "$stage/node"

# 5) compress (xz -9: the Node binary and ORT's library are most of it).
tar -C "$out" -cf - sparserm-gpu-check | xz -9 -T0 >"$out/sparserm-gpu-check.tar.xz"
size=$(stat -c %s "$out/sparserm-gpu-check.tar.xz")
echo "bundle: $out/sparserm-gpu-check.tar.xz ($((size / 1048576)) MiB; limit 60 MiB)"
[ "$size" -lt $((60 * 1048576)) ] || { echo "error: bundle over 60 MiB" >&2; exit 1; }
