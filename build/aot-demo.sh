#!/usr/bin/env bash
# examples/Int8Inference with NativeAOT and no libtorch:
#   1. builds the JIT app and exports ResNet-18 in int8 to a .qgen file (this step uses TorchSharp/libtorch);
#   2. publishes the app with NativeAOT (PublishAot=true, IlcInstructionSet for this CPU);
#   3. deletes every native library (libtorch*.so, libLibTorchSharp.so, ...) from the publish folder;
#   4. runs the AOT binary on the file and checks that its result equals the exporting run's, bit for bit;
#   5. reports binary size and time to first result (median of several runs) against the same app run JIT
#      from its build folder, TorchSharp and libtorch present.
#
#   bash build/aot-demo.sh [--size N] [--repeat N]
#
# Output stays in artifacts/int8inference/ (publish/ holds the binary). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

size=224
repeat=7
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "usage: $0 [--size N] [--repeat N]" >&2; exit 2 ;;
  esac
done

project=examples/Int8Inference
out=artifacts/int8inference
model="$out/resnet18.qgen"
publish="$out/publish"

# NativeAOT links with clang (or gcc) and needs zlib's headers; install them the way .ci/run installs things.
if ! { command -v clang >/dev/null || command -v gcc >/dev/null; } || [ ! -f /usr/include/zlib.h ]; then
  echo "== installing the NativeAOT prerequisites (clang, zlib1g-dev)"
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "NativeAOT needs clang or gcc and zlib's headers (Debian/Ubuntu: apt-get install clang zlib1g-dev)." >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang zlib1g-dev >/dev/null
fi

# The instruction sets the AOT code is compiled for (examples/Int8Inference/Int8Inference.csproj says why).
case "$(uname -m)" in
  x86_64)
    rid=linux-x64
    if grep -qw avx_vnni /proc/cpuinfo && grep -qw avx2 /proc/cpuinfo; then isa=x86-64-v3,avxvnni
    elif grep -qw avx2 /proc/cpuinfo; then isa=x86-64-v3
    else isa=x86-64; fi
    isa_property=(-p:IlcInstructionSet="${isa//,/%2C}") ;;   # %2C: MSBuild splits -p values at commas
  aarch64)
    rid=linux-arm64
    isa="native"
    isa_property=(-p:IlcInstructionSet=native) ;;
  *) echo "no NativeAOT demo for $(uname -m)" >&2; exit 1 ;;
esac

mkdir -p "$out"
jit_dir="$project/bin/Release/net10.0"

echo "== 1. JIT build and export (TorchSharp + libtorch: calibrate, convert, save)"
dotnet build "$project" -c Release -tl:off -v:q -nologo
export_log=$(dotnet "$jit_dir/Int8Inference.dll" --export "$model" --size "$size")
echo "$export_log"
expected=$(grep '^result:' <<<"$export_log")

echo
echo "== 2. NativeAOT publish ($rid, IlcInstructionSet=$isa)"
rm -rf "$publish"
dotnet publish "$project" -c Release -r "$rid" "${isa_property[@]}" -o "$publish" -tl:off -v:q -nologo
binary="$publish/Int8Inference"
[ -x "$binary" ] || { echo "no AOT binary at $binary" >&2; exit 1; }

echo
echo "== 3. delete the native libraries from $publish"
# Every native library (libtorch, libLibTorchSharp, ...) and the referenced projects' .pdb files, which the
# AOT binary does not use (its symbols are in Int8Inference.dbg).
removed=$(find "$publish" -name '*.so' -o -name '*.so.*' -o -name '*.dylib' -o -name '*.dll' -o -name '*.pdb' | sort)
if [ -n "$removed" ]; then
  echo "$removed" | sed 's/^/  removed /'
  echo "$removed" | xargs rm -f
fi
echo "left in the publish folder:"
ls -la "$publish" | sed 's/^/  /'
echo "the binary's own dependencies (system libraries only):"
ldd "$binary" | sed 's/^/  /'

echo
echo "== 4. the AOT binary, libtorch absent"
aot_log=$("$binary" "$model" --size "$size")
echo "$aot_log"
actual=$(grep '^result:' <<<"$aot_log")
if [ "$actual" != "$expected" ]; then
  echo "MISMATCH: the AOT binary's result differs from the exporting JIT run's" >&2
  echo "  export: $expected" >&2
  echo "  aot:    $actual" >&2
  exit 1
fi
echo "same result as the exporting JIT run (top-5 and the logits' bits): yes"
if ! grep -q 'int8 kernels: \(AvxVnni\|Avx512BW\|Avx2\|NeonDot\)' <<<"$aot_log"; then
  echo "WARNING: the AOT binary runs the scalar kernels (IlcInstructionSet=$isa)" >&2
fi

# Wall-clock milliseconds of one run: process start to exit, which here is load + first forward + print.
wall_ms() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo
echo "== 5. size and start-up (time to first result = process start to exit after one forward; median of $repeat runs)"
# Interleaved, so that other load on the machine weighs on both alike.
aot_times=""
jit_times=""
for _ in $(seq "$repeat"); do
  aot_times+="$(wall_ms "$binary" "$model" --size "$size")"$'\n'
  jit_times+="$(wall_ms "$jit_dir/Int8Inference" "$model" --size "$size")"$'\n'
done
aot_times=${aot_times%$'\n'}
jit_times=${jit_times%$'\n'}
aot_median=$(median <<<"$aot_times")
jit_median=$(median <<<"$jit_times")
aot_size=$(stat -c %s "$binary")
jit_size=$(du -sb "$jit_dir" | cut -f1)
jit_native=$(find "$jit_dir" \( -name '*.so' -o -name '*.so.*' \) -print0 | du -cb --files0-from=- | tail -n 1 | cut -f1)
model_size=$(stat -c %s "$model")
steady_aot=$("$binary" "$model" --size "$size" --runs 10 | grep '^steady state')
steady_jit=$("$jit_dir/Int8Inference" "$model" --size "$size" --runs 10 | grep '^steady state')
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

printf '%-44s %-22s %s\n' "" "NativeAOT, no libtorch" "JIT, TorchSharp present"
printf '%-44s %-22s %s\n' "size on disk" "$(mb "$aot_size") (one file)" "$(mb "$jit_size") (build folder; $(mb "$jit_native") native)"
printf '%-44s %-22s %s\n' "time to first result (median, ms)" "$aot_median" "$jit_median"
printf '%-44s %-22s %s\n' "  all runs (ms)" "$(tr '\n' ' ' <<<"$aot_times")" "$(tr '\n' ' ' <<<"$jit_times")"
printf '%-44s %-22s %s\n' "steady-state forward" "${steady_aot#steady state: }" "${steady_jit#steady state: }"
echo "load average during the runs: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "model file: $(mb "$model_size"); input 1x3x${size}x${size}; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "aot-demo: OK"
