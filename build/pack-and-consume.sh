#!/usr/bin/env bash
# Packs QuantGen's packages into artifacts/packages, checks their layout, then installs them the way a user
# does, from that folder feed with no project references and no file of the repository imported:
#   1. samples/PackageConsumer (QuantGen, QuantGen.Onnx, QuantGen.Reports, TorchSharp-cpu) is restored,
#      built and run; it checks its int8 results, a saved and loaded model file, an ONNX export and a report;
#   2. a FRESH console app is made in a temporary folder with `dotnet new console`, given a nuget.config with
#      the feed and the usual NuGet source, `dotnet add package QuantGen --prerelease` and TorchSharp-cpu,
#      and a small [Quantize] model; it is built and run, and its output is checked. On Debian 12 / Ubuntu
#      22.04 this run only works if the QuantGen package's build targets fixed TorchSharp's native library.
# Exits non-zero if packing, a layout check, a restore, a build or a run's checks fail.
#
#   bash build/pack-and-consume.sh
#
# Both apps are restored into a fresh package folder each run, so a copy of the same version left in the
# machine's NuGet cache by an earlier run can never stand in for the packages just built.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# unzip reads the packages; install it where it is missing, as the CI machine's setup would.
if ! command -v unzip >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip >/dev/null
  else
    echo "unzip is required (Debian/Ubuntu: apt-get install unzip)" >&2
    exit 1
  fi
fi

feed=artifacts/packages
rm -rf "$feed"
mkdir -p "$feed"

started=$SECONDS
echo "== pack (Release) into $feed"
for project in QuantGen.Attributes QuantGen.Runtime QuantGen.Generator QuantGen.Onnx QuantGen.Reports QuantGen.Tool; do
  dotnet pack "src/$project" -c Release -o "$feed" -tl:off -v:m -nologo
done
version=$(dotnet msbuild src/QuantGen.Runtime -getProperty:PackageVersion)
echo "version $version (packed in $((SECONDS - started)) s)"

failures=0
fail() { echo "LAYOUT: $*" >&2; failures=$((failures + 1)); }
# Each check reads the whole listing or nuspec into a variable first (no early-closing pipe under pipefail).
entries() { unzip -Z1 "$1"; }
nuspec() { unzip -p "$1" '*.nuspec'; }
# has PACKAGE ENTRY: the package's zip holds exactly that path.
has() { local list; list=$(entries "$1"); grep -qxF "$2" <<<"$list" || fail "$(basename "$1") lacks $2"; }
# mentions PACKAGE TEXT: the package's nuspec contains that text.
mentions() { local text; text=$(nuspec "$1"); grep -qF "$2" <<<"$text" || fail "$(basename "$1")'s nuspec lacks: $2"; }
# lacks PACKAGE REGEX WHY: neither an entry nor the nuspec matches.
lacks() { local text; text="$(entries "$1")"$'\n'"$(nuspec "$1")"; if grep -qE "$2" <<<"$text"; then fail "$(basename "$1"): $3"; fi; }
# central ID: the version Directory.Packages.props gives that package (what a package's dependency must say).
central() { sed -n "s/.*<PackageVersion Include=\"${1//./\\.}\" Version=\"\([^\"]*\)\".*/\1/p" Directory.Packages.props; }
# depends PACKAGE ID: the nuspec has a dependency on ID at the version (or range) Directory.Packages.props gives
# it; NuGet writes a range with a space after the comma.
depends() {
  local v; v=$(central "$2")
  if [ -z "$v" ]; then fail "Directory.Packages.props has no <PackageVersion> for $2"; return; fi
  mentions "$1" "<dependency id=\"$2\" version=\"${v//,/, }\""
}
# exactly PACKAGE ID: the nuspec depends on the QuantGen package ID at exactly this version ([v]): the
# packages are built together, and the generated code calls QuantGen.Runtime's API of the same build.
exactly() { mentions "$1" "<dependency id=\"$2\" version=\"[$version]\""; }

echo
echo "== package contents"
for id in QuantGen QuantGen.Runtime QuantGen.Attributes QuantGen.Onnx QuantGen.Reports; do
  package="$feed/$id.$version.nupkg"
  if [ ! -f "$package" ]; then
    fail "$package was not produced"
    continue
  fi
  unzip -l "$package"
  echo "-- $id.nuspec dependencies:"
  nuspec "$package" | sed -n '/<dependencies>/,/<\/dependencies>/p'
  echo
  # Every package: its README, the licence expression, the repository.
  has "$package" README.md
  mentions "$package" '<readme>README.md</readme>'
  mentions "$package" '<license type="expression">MIT</license>'
  mentions "$package" 'https://github.com/quantgen/quantgen'
  mentions "$package" '<tags>'
done

quantgen="$feed/QuantGen.$version.nupkg"
runtime="$feed/QuantGen.Runtime.$version.nupkg"
attributes="$feed/QuantGen.Attributes.$version.nupkg"
onnx="$feed/QuantGen.Onnx.$version.nupkg"
reports="$feed/QuantGen.Reports.$version.nupkg"
if [ -f "$quantgen" ]; then
  has "$quantgen" analyzers/dotnet/cs/QuantGen.Generator.dll
  # TorchSharp's native library on Debian 12 / Ubuntu 22.04 (README "Platform notes"): for a project that
  # references QuantGen (build/) and for an app that gets it through a library (buildTransitive/).
  has "$quantgen" build/QuantGen.targets
  has "$quantgen" buildTransitive/QuantGen.targets
  # The IDE's code fixes, in an assembly of their own beside the generator (they need Workspaces, which the
  # generator must not reference); the compiler passes over it, the IDE loads it.
  has "$quantgen" analyzers/dotnet/cs/QuantGen.CodeFixes.dll
  # The diagnostics' help links point at the packaged docs/diagnostics.md through buildTransitive/QuantGen.props.
  has "$quantgen" docs/diagnostics.md
  has "$quantgen" buildTransitive/QuantGen.props
  packaged_docs=$(unzip -p "$quantgen" docs/diagnostics.md)
  [ "$packaged_docs" = "$(cat docs/diagnostics.md)" ] || fail "QuantGen's docs/diagnostics.md differs from the repository's"
  # The generator is a compiler plug-in, never a reference of user code, and Roslyn is the compiler's own.
  lacks "$quantgen" '^lib/' "the generator is packed as a lib reference"
  lacks "$quantgen" 'Microsoft\.CodeAnalysis' "Microsoft.CodeAnalysis must not flow (it is the compiler's own)"
  exactly "$quantgen" QuantGen.Runtime
fi
if [ -f "$runtime" ]; then
  has "$runtime" lib/net10.0/QuantGen.Runtime.dll
  has "$runtime" lib/net10.0/QuantGen.Runtime.xml
  exactly "$runtime" QuantGen.Attributes
  depends "$runtime" TorchSharp
  depends "$runtime" Iced # the assembler of the AVX-512 VNNI kernels generated at run time
  lacks "$runtime" 'id="TorchSharp-cpu"' "depends on TorchSharp-cpu (the app chooses its libtorch)"
fi
if [ -f "$attributes" ]; then
  has "$attributes" lib/netstandard2.0/QuantGen.Attributes.dll
  has "$attributes" lib/netstandard2.0/QuantGen.Attributes.xml
fi
if [ -f "$onnx" ]; then
  has "$onnx" lib/net10.0/QuantGen.Onnx.dll
  has "$onnx" lib/net10.0/QuantGen.Onnx.xml
  # The assembly holds code generated from onnx.proto (derived from ONNX's Apache-2.0 onnx.proto3).
  has "$onnx" THIRD-PARTY-NOTICES.txt
  exactly "$onnx" QuantGen.Runtime
  depends "$onnx" Google.Protobuf
  # Grpc.Tools only runs protoc at build time (PrivateAssets=all); as a dependency it would land in every app.
  lacks "$onnx" 'Grpc\.Tools' "depends on Grpc.Tools (build-time only)"
fi
if [ -f "$reports" ]; then
  has "$reports" lib/net10.0/QuantGen.Reports.dll
  has "$reports" lib/net10.0/QuantGen.Reports.xml
  exactly "$reports" QuantGen.Runtime
  depends "$reports" Spectre.Console
  depends "$reports" ScottPlot
fi
if [ "$failures" -ne 0 ]; then
  echo "package layout: $failures problem(s)" >&2
  exit 1
fi
echo "package layout: OK"

echo
echo "== consume: samples/PackageConsumer from $feed"
started=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
feed_path=$(cd "$feed" && pwd)
# A fresh package folder, seeded with hard links to the machine's NuGet cache (no copying: TorchSharp-cpu
# brings ~1.2 GB of native packages) but never with a QuantGen package, which must come from the feed.
global=$(dotnet nuget locals global-packages --list | sed 's/^global-packages: *//')
mkdir -p "$work/packages"
if [ -d "$global" ] && ! cp -al "$global/." "$work/packages/" 2>/dev/null; then
  echo "(cannot hard-link $global here: restoring every package afresh)"
  rm -rf "$work/packages"
  mkdir -p "$work/packages"
fi
rm -rf "$work/packages/quantgen" "$work/packages"/quantgen.*
# restored_from_feed ID...: each QuantGen package of this version is in the fresh folder and came from the feed.
restored_from_feed() {
  local id
  for id in "$@"; do
    local metadata="$work/packages/$id/$version/.nupkg.metadata"
    [ -f "$work/packages/$id/$version/$id.$version.nupkg" ] || { echo "CONSUME: $id $version was not restored" >&2; exit 1; }
    grep -qF "$feed_path" "$metadata" || { echo "CONSUME: $id $version did not come from $feed_path: $(cat "$metadata")" >&2; exit 1; }
  done
}

dotnet restore samples/PackageConsumer --packages "$work/packages" -p:QuantGenVersion="$version" -tl:off -v:m
dotnet build samples/PackageConsumer --no-restore -c Release -o "$work/bin" -p:QuantGenVersion="$version" -tl:off -v:m -nologo
restored_from_feed quantgen quantgen.runtime quantgen.attributes quantgen.onnx quantgen.reports
dotnet "$work/bin/PackageConsumer.dll" --save-model "$work/tinynet.qgen"
echo "samples/PackageConsumer: OK ($((SECONDS - started)) s)"

echo
echo "== a fresh console app from $feed (dotnet new console, dotnet add package)"
started=$SECONDS
torchsharp=$(central TorchSharp-cpu)
app="$work/FirstApp"
(
  # Everything below runs outside the repository: no Directory.Build.*, no nuget.config of the repository.
  cd "$work"
  export NUGET_PACKAGES="$work/packages"
  dotnet new console -o FirstApp --framework net10.0 >/dev/null
  cd FirstApp
  # The README's install steps: a nuget.config with the usual source, plus the folder feed.
  dotnet new nugetconfig >/dev/null
  dotnet nuget add source "$feed_path" --name quantgen-local --configfile nuget.config >/dev/null
  dotnet add package QuantGen --prerelease
  dotnet add package TorchSharp-cpu --version "$torchsharp"
  cat >Program.cs <<'CSHARP'
using QuantGen;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

torch.manual_seed(1);
using var model = new SmallNet();
model.eval();
using SmallNet.Observed observed = model.Prepare();
using (torch.no_grad())
{
    for (int i = 0; i < 4; i++) observed.forward(torch.randn(8, 3, 16, 16));
}

SmallNet.Quantized int8 = observed.Convert();
using Tensor x = torch.randn(8, 3, 16, 16);
using Tensor expected = model.forward(x);
using Tensor actual = int8.forward(x);
float maxDiff = (expected - actual).abs().max().item<float>();
float steps = maxDiff / int8.fc.Scale;
long agree = expected.argmax(1).eq(actual.argmax(1)).sum().item<long>();
Console.WriteLine($"int8 vs float: max |diff| {maxDiff:G4} = {steps:F2} output steps, top-1 agrees on {agree}/8");
// A few output steps of accumulated rounding are expected on a small random model; more means a real error.
Console.WriteLine(steps <= 4 ? "FirstApp: OK" : "FirstApp: FAILED: int8 is more than 4 output steps from float");
return steps <= 4 ? 0 : 1;

[Quantize]
public partial class SmallNet : Module<Tensor, Tensor>
{
    private readonly Conv2d conv = Conv2d(3, 8, 3, padding: 1);
    private readonly BatchNorm2d bn = BatchNorm2d(8);
    private readonly ReLU relu = ReLU();
    private readonly AdaptiveAvgPool2d pool = AdaptiveAvgPool2d(new long[] { 1, 1 });
    private readonly Linear fc = Linear(8, 4);

    public SmallNet() : base(nameof(SmallNet)) => RegisterComponents();

    public override Tensor forward(Tensor x) =>
        fc.forward(torch.flatten(pool.forward(relu.forward(bn.forward(conv.forward(x)))), 1));
}
CSHARP
  dotnet build -c Release -tl:off -v:m -nologo | tee "$work/firstapp-build.txt"
  dotnet run -c Release --no-build | tee "$work/firstapp-run.txt"
)
restored_from_feed quantgen quantgen.runtime quantgen.attributes
# The QuantGen package's build targets were imported by the fresh app (NuGet's generated import file).
grep -q 'quantgen/[^"]*/QuantGen.targets' "$app"/obj/*.nuget.g.targets \
  || { echo "CONSUME: QuantGen.targets was not imported by the fresh app" >&2; exit 1; }
grep -qx "FirstApp: OK" "$work/firstapp-run.txt" || { echo "CONSUME: the fresh app's check failed" >&2; exit 1; }
echo "fresh console app: OK ($((SECONDS - started)) s; bin $(du -sh "$app/bin/Release" | cut -f1))"

# The quantgen tool: its package's layout, then installed from the feed as a user installs it, run on the file
# the sample saved (inspect reads any .qgen alone; export of this generated-form model takes the sample's assembly).
echo
echo "== quantgen tool from $feed"
tool="$feed/QuantGen.Tool.$version.nupkg"
[ -f "$tool" ] || { echo "LAYOUT: $tool was not produced" >&2; exit 1; }
has "$tool" tools/net10.0/any/QuantGen.Tool.dll
has "$tool" tools/net10.0/any/DotnetToolSettings.xml
mentions "$tool" '<packageType name="DotnetTool" />'
[ "$failures" -eq 0 ] || { echo "quantgen tool package layout: $failures problem(s)" >&2; exit 1; }
NUGET_PACKAGES="$work/packages" dotnet tool install --tool-path "$work/tools" --add-source "$feed" QuantGen.Tool --version "$version" -v:m
"$work/tools/quantgen" --help >/dev/null
inspect=$("$work/tools/quantgen" inspect "$work/tinynet.qgen")
echo "$inspect"
grep -q "model        TinyNet" <<<"$inspect" || { echo "TOOL: quantgen inspect did not name the model TinyNet" >&2; exit 1; }
"$work/tools/quantgen" export "$work/tinynet.qgen" --onnx "$work/tinynet.onnx" --assembly "$work/bin/PackageConsumer.dll"
[ -s "$work/tinynet.onnx" ] || { echo "TOOL: quantgen export wrote no ONNX file" >&2; exit 1; }
echo "pack-and-consume: OK"
