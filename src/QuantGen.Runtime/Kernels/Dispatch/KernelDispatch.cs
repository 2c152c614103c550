using System;
using System.Collections.Generic;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using QuantGen.Kernels.X86.Generated;

namespace QuantGen.Kernels;

/// <summary>
/// The one dispatch point: probes the CPU once (best first: AVX-VNNI → AVX-512BW → AVX2 → AdvSimd Dp →
/// scalar) and honours <c>QUANTGEN_ISA=scalar|avx2|avx512bw|avxvnni|neondot</c> to force another
/// supported path. The runtime's own switches (<c>DOTNET_EnableAVXVNNI=0</c>, <c>DOTNET_EnableAVX512=0</c>,
/// <c>DOTNET_EnableAVX2=0</c>, <c>DOTNET_EnableHWIntrinsic=0</c>) turn the <c>IsSupported</c> flags off, so
/// the probe simply lands lower. Where the CPU has AVX-512 VNNI the GEMM micro-kernels are generated at run time
/// (<see cref="GemmAvx512VnniGenerated"/>, the AVX-VNNI path's panels and results) and that path is the best one —
/// also on CPUs with AVX-512 VNNI but no AVX-VNNI (Intel's Cascade Lake, Ice Lake and Sapphire Rapids servers, most
/// x64 cloud machines), which would otherwise fall to the widened AVX-512BW kernels at less than half the speed.
/// <c>QUANTGEN_JIT=0</c> or any <c>QUANTGEN_ISA</c> keeps the managed kernels.
/// </summary>
public static class KernelDispatch
{
    /// <summary>The environment variable that forces a path.</summary>
    public const string OverrideVariable = "QUANTGEN_ISA";

    // PublicationOnly: only a good value is kept, so a bad QUANTGEN_ISA throws its own exception on every use
    // (not one cached exception object, whose stack trace would point at the first caller).
    private static readonly Lazy<KernelIsa> s_isa = new(() => Select(Environment.GetEnvironmentVariable(OverrideVariable)), System.Threading.LazyThreadSafetyMode.PublicationOnly);

    /// <summary>The path every kernel entry point uses by default (probed once; throws if the override names an unsupported ISA).</summary>
    /// <exception cref="QuantGenConfigurationException">QUANTGEN_ISA names an unknown or unsupported ISA.</exception>
    public static KernelIsa Isa => s_isa.Value;

    /// <summary>
    /// The GEMM config of <see cref="Isa"/>: for AVX-VNNI the generated 512-bit kernels where they run and no
    /// <c>QUANTGEN_ISA</c> forces a path, else the managed ones.
    /// </summary>
    public static GemmConfig Config => Isa == KernelIsa.AvxVnni && !Forced && GemmAvx512VnniGenerated.IsAvailable ? GemmConfig.AvxVnniGenerated : GemmConfig.For(Isa);

    /// <summary>True when <c>QUANTGEN_ISA</c> names a path (which then runs its managed kernels).</summary>
    private static bool Forced => !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(OverrideVariable));

    /// <summary>The best ISA this machine supports, ignoring any override.</summary>
    public static KernelIsa Best
    {
        get
        {
            // The generated 512-bit vpdpbusd kernels share the AVX-VNNI path's panels; they need AVX-512 VNNI, not AVX-VNNI.
            if (GeneratedKernelsRun)
            {
                return KernelIsa.AvxVnni;
            }

            foreach (GemmConfig config in GemmConfig.All)
            {
                if (IsSupported(config.Isa))
                {
                    return config.Isa;
                }
            }

            return KernelIsa.Scalar;
        }
    }

    /// <summary>Which path runs and why, e.g. for logs and benchmark tables.</summary>
    public static string KernelInfo
    {
        get
        {
            GemmConfig config = Config;
            string source = Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } forced
                ? $"forced by {OverrideVariable}={forced}"
                : "probed";
            string depthwise = config.Isa switch
            {
                KernelIsa.Scalar => "scalar reference",
                KernelIsa.NeonDot => "vector128",
                _ => "vector256",
            };
            string generated = config.Isa != KernelIsa.AvxVnni && !GemmAvx512VnniGenerated.IsAvailable ? string.Empty
                : Forced ? $" [managed kernels: {OverrideVariable} forces them]"
                : $" [{GemmAvx512VnniGenerated.Status}]";
            return $"int8 kernels: {config.Isa} ({source}; supported: {SupportedList()}); gemm {config}{generated}; depthwise {depthwise}; requantize {(config.Isa == KernelIsa.Scalar ? "scalar reference" : depthwise)}";
        }
    }

    /// <summary>True when the generated AVX-512 VNNI kernels run in this process (x64 Linux with AVX-512 VNNI, QUANTGEN_JIT not 0).</summary>
    private static bool GeneratedKernelsRun => Avx2.IsSupported && GemmAvx512VnniGenerated.IsAvailable;

    /// <summary>True when the managed kernels of <paramref name="isa"/> can run here (the generated ones: <see cref="GemmConfig.IsSupported"/>).</summary>
    public static bool IsSupported(KernelIsa isa) => isa switch
    {
        KernelIsa.Scalar => true,
        KernelIsa.Avx2 => Avx2.IsSupported,
        KernelIsa.Avx512BW => Avx512BW.IsSupported && Avx2.IsSupported,
        KernelIsa.AvxVnni => AvxVnni.IsSupported && Avx2.IsSupported,
        KernelIsa.NeonDot => Dp.IsSupported && AdvSimd.Arm64.IsSupported,
        _ => false,
    };

    /// <summary>The ISA an override value selects: null/empty → <see cref="Best"/>; otherwise the named ISA, which must be supported.</summary>
    /// <exception cref="QuantGenConfigurationException">Unknown name, or an ISA this machine does not support (the message names the variable, the value and the accepted names).</exception>
    public static KernelIsa Select(string? requested)
    {
        if (string.IsNullOrWhiteSpace(requested))
        {
            return Best;
        }

        KernelIsa isa = requested.Trim().ToLowerInvariant() switch
        {
            "scalar" => KernelIsa.Scalar,
            "avx2" => KernelIsa.Avx2,
            "avx512bw" or "avx512" => KernelIsa.Avx512BW,
            "avxvnni" or "vnni" => KernelIsa.AvxVnni,
            "neondot" or "dp" => KernelIsa.NeonDot,
            _ => throw new QuantGenConfigurationException(OverrideVariable, requested, AcceptedNames(), "no such ISA"),
        };
        if (!IsSupported(isa))
        {
            throw new QuantGenConfigurationException(OverrideVariable, requested, AcceptedNames(), $"this machine (or the DOTNET_Enable* settings) does not support {isa}");
        }

        return isa;
    }

    /// <summary>The names QUANTGEN_ISA takes, and which of them this machine runs.</summary>
    private static string AcceptedNames() => $"scalar, avx2, avx512bw, avxvnni or neondot (supported here: {SupportedList()})";

    /// <summary>The supported ISAs, best first, comma-separated.</summary>
    public static string SupportedList()
    {
        var names = new List<string>();
        foreach (GemmConfig config in GemmConfig.All)
        {
            if (IsSupported(config.Isa))
            {
                names.Add(config.Isa.ToString());
            }
        }

        return string.Join(", ", names);
    }
}
