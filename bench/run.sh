#!/usr/bin/env bash
# QuantGen benchmarks in one command: builds bench/QuantGen.Bench in Release and runs it.
#
#   bash bench/run.sh              the side-by-side table: ResNet-18 (1×3×224×224), FashionCnn (1×1×28×28), and
#                                  examples/RealModels' MobileNetV2 (depthwise, ReLU6) and ResNet-50 (1×1-heavy) at
#                                  1×3×224×224, batch 1 at 1 and 2 threads — QuantGen int8, QuantGen's scalar reference (own
#                                  process, QUANTGEN_ISA=scalar), ONNX Runtime int8 (the same model exported QDQ) and
#                                  fp32, TorchSharp fp32, with ratios to QuantGen; allocated bytes per QuantGen
#                                  forward; the int8 GEMM on ResNet-18's shapes in GOPS and as a share of the
#                                  vpdpbusd peak measured in the same run; calibration speed (HistogramObserver vs
#                                  float forward). Prints it; changes no file.
#                                  Stopwatch medians in one process; about 8 minutes on 2 cores.
#   bash bench/run.sh --quick      the same with shorter measurements (about 3 minutes).
#   bash bench/run.sh --write      also writes the table, with date and machine, into docs/performance.md
#                                  between the MEASURED markers (the rest of the file is kept): for a
#                                  maintainer refreshing the published figures, on an idle machine.
#   bash bench/run.sh --bdn [--quick] [BenchmarkDotNet arguments]
#                                  the BenchmarkDotNet classes instead (MemoryDiagnoser on), e.g.
#                                  `--bdn --quick --filter '*ResNet18Forward*'`; default filter '*'. Classes:
#                                  ResNet18Forward, FashionCnnForward, ScalarForward (QUANTGEN_ISA=scalar job),
#                                  GemmBenchmarks, GeneratedGemmBenchmarks, VnniPeakBenchmark, CalibrationBenchmarks,
#                                  DynamicLinearBenchmarks (dynamic Linear vs TorchSharp fp32 and ORT int8/fp32, 1 thread),
#                                  DynamicRecurrentBenchmarks (dynamic LSTM/GRU vs TorchSharp fp32, LSTM vs ORT int8/fp32,
#                                  1 thread),
#                                  ConvTranspose2dBenchmarks (UNet up-sampling layers, int8 vs its scalar reference vs TorchSharp fp32). BenchmarkDotNet's default
#                                  job is slow on 2 cores (an hour or more for everything); --quick uses 3 warm-up and
#                                  10 measured iterations. Results in BenchmarkDotNet.Artifacts/ (git-ignored).
#                                  QUANTGEN_BENCH_JOB=dry (instead of --quick) runs BenchmarkDotNet's Dry job: one cold
#                                  call per case, a smoke test that the classes run, not a measurement.
#
# Measure on an otherwise idle machine: the script prints the load average first. Models (.qgen, .onnx) go to
# $QUANTGEN_BENCH_DIR (default: a new temporary folder, removed afterwards).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
project="$repo/bench/QuantGen.Bench"
mode=table
quick=()
write=0
bdn_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=(--quick); shift ;;
    --write) write=1; shift ;;
    --no-write) write=0; shift ;;   # the default; kept so older command lines still work
    --bdn) mode=bdn; shift ;;
    *) if [[ $mode == bdn ]]; then bdn_args+=("$1"); shift; else echo "unknown option: $1 (see the top of $0)" >&2; exit 2; fi ;;
  esac
done

echo "== build (Release)"
dotnet build "$project/QuantGen.Bench.csproj" -c Release -nologo -v quiet

work_dir_created=0
if [[ -z "${QUANTGEN_BENCH_DIR:-}" ]]; then
  export QUANTGEN_BENCH_DIR="$(mktemp -d -t quantgen-bench.XXXXXX)"
  work_dir_created=1
fi
cleanup() { if [[ $work_dir_created == 1 ]]; then rm -rf "$QUANTGEN_BENCH_DIR"; fi; }
trap cleanup EXIT

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
dll="$project/bin/Release/net10.0/QuantGen.Bench.dll"
if [[ $mode == bdn ]]; then
  if [[ ${#quick[@]} -gt 0 ]]; then export QUANTGEN_BENCH_JOB=quick; fi
  if [[ ${#bdn_args[@]} -eq 0 ]]; then bdn_args=(--filter '*'); fi
  cd "$repo"
  dotnet "$dll" bdn "${bdn_args[@]}"
else
  out=()
  if [[ $write == 1 ]]; then out=(--out "$repo/docs/performance.md"); fi
  dotnet "$dll" table "${quick[@]}" "${out[@]}"
fi
