#!/usr/bin/env bash
# Packs QuantGen's packages into artifacts/packages, checks their layout, then installs them into
# samples/PackageConsumer the way a user does (a folder feed, no project references) and runs it.
# Exits non-zero if packing, a layout check, the restore, the build or the sample's own checks fail.
#
#   bash build/pack-and-consume.sh
#
# The sample is restored into a fresh package folder each run, so a copy of the same version left in
# the machine's NuGet cache by an earlier run can never stand in for the packages just built.
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

echo "== pack (Release) into $feed"
for project in QuantGen.Attributes QuantGen.Runtime QuantGen.Generator QuantGen.Onnx QuantGen.Reports; do
  dotnet pack "src/$project" -c Release -o "$feed" -tl:off -v:m -nologo
done
version=$(dotnet msbuild src/QuantGen.Runtime -getProperty:PackageVersion)
echo "version $version"

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
# depends PACKAGE ID: the nuspec has a dependency on ID at the version Directory.Packages.props gives it.
depends() {
  local v; v=$(central "$2")
  if [ -z "$v" ]; then fail "Directory.Packages.props has no <PackageVersion> for $2"; return; fi
  mentions "$1" "<dependency id=\"$2\" version=\"$v\""
}

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
  mentions "$quantgen" "<dependency id=\"QuantGen.Runtime\" version=\"$version\""
fi
if [ -f "$runtime" ]; then
  has "$runtime" lib/net10.0/QuantGen.Runtime.dll
  mentions "$runtime" "<dependency id=\"QuantGen.Attributes\" version=\"$version\""
  mentions "$runtime" '<dependency id="TorchSharp" '
  lacks "$runtime" 'id="TorchSharp-cpu"' "depends on TorchSharp-cpu (the app chooses its libtorch)"
fi
if [ -f "$attributes" ]; then
  has "$attributes" lib/netstandard2.0/QuantGen.Attributes.dll
fi
if [ -f "$onnx" ]; then
  has "$onnx" lib/net10.0/QuantGen.Onnx.dll
  # The assembly holds code generated from onnx.proto (derived from ONNX's Apache-2.0 onnx.proto3).
  has "$onnx" THIRD-PARTY-NOTICES.txt
  mentions "$onnx" "<dependency id=\"QuantGen.Runtime\" version=\"$version\""
  depends "$onnx" Google.Protobuf
  # Grpc.Tools only runs protoc at build time (PrivateAssets=all); as a dependency it would land in every app.
  lacks "$onnx" 'Grpc\.Tools' "depends on Grpc.Tools (build-time only)"
fi
if [ -f "$reports" ]; then
  has "$reports" lib/net10.0/QuantGen.Reports.dll
  # QuantGen.Reports.csproj sets GenerateDocumentationFile: the IDE's tooltips come from this file.
  has "$reports" lib/net10.0/QuantGen.Reports.xml
  mentions "$reports" "<dependency id=\"QuantGen.Runtime\" version=\"$version\""
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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A fresh package folder, seeded with hard links to the machine's NuGet cache (no copying: TorchSharp-cpu
# brings ~1.5 GB of native packages) but never with a QuantGen package, which must come from the feed.
global=$(dotnet nuget locals global-packages --list | sed 's/^global-packages: *//')
mkdir -p "$work/packages"
if [ -d "$global" ] && ! cp -al "$global/." "$work/packages/" 2>/dev/null; then
  echo "(cannot hard-link $global here: restoring every package afresh)"
  rm -rf "$work/packages"
  mkdir -p "$work/packages"
fi
rm -rf "$work/packages/quantgen" "$work/packages"/quantgen.*

dotnet restore samples/PackageConsumer --packages "$work/packages" -p:QuantGenVersion="$version" -tl:off -v:m
dotnet build samples/PackageConsumer --no-restore -c Release -o "$work/bin" -p:QuantGenVersion="$version" -tl:off -v:m -nologo
# What was restored, and from where: the QuantGen packages of this run, nothing else.
for id in quantgen quantgen.runtime quantgen.attributes quantgen.onnx quantgen.reports; do
  [ -f "$work/packages/$id/$version/$id.$version.nupkg" ] || { echo "CONSUME: $id $version was not restored from $feed" >&2; exit 1; }
done
dotnet "$work/bin/PackageConsumer.dll"
echo "pack-and-consume: OK"
