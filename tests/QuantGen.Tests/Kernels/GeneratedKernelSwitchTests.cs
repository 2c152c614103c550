using System;
using System.Reflection;
using System.Runtime.Loader;
using QuantGen.Kernels;
using QuantGen.Kernels.X86.Generated;
using QuantGen.Tests.Kernels.Simd;

namespace QuantGen.Tests.Kernels;

/// <summary>
/// <c>QUANTGEN_JIT</c> in a process that starts with it (reproduced, as in <see cref="BadEnvironmentSettingTests"/>, by
/// a second copy of QuantGen.Runtime in a collectible load context): <c>0</c>/<c>off</c> leave the managed GEMM kernels
/// in charge and the dispatcher says why; a value it does not know is reported, naming the variable, at every use.
/// Runs alone (its collection) because it changes environment variables; puts them back.
/// </summary>
[Collection(KernelThreadsCollection.Name)]
public sealed class GeneratedKernelSwitchTests
{
    [Fact]
    public void SwitchedOffTheManagedKernelsRunAndTheDispatcherSaysWhy()
    {
        _ = GemmAvx512VnniGenerated.IsAvailable; // this copy keeps what it read
        _ = KernelDispatch.Config;
        string? jitBefore = Environment.GetEnvironmentVariable(GemmAvx512VnniGenerated.SwitchVariable);
        string? isaBefore = Environment.GetEnvironmentVariable(KernelDispatch.OverrideVariable);
        try
        {
            Environment.SetEnvironmentVariable(KernelDispatch.OverrideVariable, null);
            foreach (string value in new[] { "0", " OFF " })
            {
                Environment.SetEnvironmentVariable(GemmAvx512VnniGenerated.SwitchVariable, value);
                WithFreshRuntime(runtime =>
                {
                    Type generated = runtime.GetType(typeof(GemmAvx512VnniGenerated).FullName!, throwOnError: true)!;
                    Assert.False((bool)generated.GetProperty(nameof(GemmAvx512VnniGenerated.IsAvailable))!.GetValue(null)!);
                    string status = (string)generated.GetProperty(nameof(GemmAvx512VnniGenerated.Status))!.GetValue(null)!;
                    Assert.Equal($"managed kernels: generated kernels turned off by QUANTGEN_JIT={value}", status);

                    Type dispatch = runtime.GetType(typeof(KernelDispatch).FullName!, throwOnError: true)!;
                    object config = dispatch.GetProperty(nameof(KernelDispatch.Config))!.GetValue(null)!;
                    Assert.False((bool)config.GetType().GetProperty(nameof(GemmConfig.Generated))!.GetValue(config)!);
                    string isa = dispatch.GetProperty(nameof(KernelDispatch.Isa))!.GetValue(null)!.ToString()!;
                    // The best managed path (on a CPU with AVX-512 VNNI but no AVX-VNNI that is AVX-512BW, not the generated path's AvxVnni).
                    Assert.Equal(Array.Find(GemmConfig.All, c => KernelDispatch.IsSupported(c.Isa))!.Isa.ToString(), isa);
                    string info = (string)dispatch.GetProperty(nameof(KernelDispatch.KernelInfo))!.GetValue(null)!;
                    if (isa == nameof(KernelIsa.AvxVnni))
                    {
                        Assert.Contains(status, info);
                    }

                    // The generated config refuses to run, naming the reason.
                    object generatedConfig = config.GetType().GetProperty(nameof(GemmConfig.AvxVnniGenerated))!.GetValue(null)!;
                    Assert.False((bool)generatedConfig.GetType().GetProperty(nameof(GemmConfig.IsSupported))!.GetValue(generatedConfig)!);
                });
            }

            Environment.SetEnvironmentVariable(GemmAvx512VnniGenerated.SwitchVariable, "maybe");
            WithFreshRuntime(runtime =>
            {
                PropertyInfo available = runtime.GetType(typeof(GemmAvx512VnniGenerated).FullName!, throwOnError: true)!.GetProperty(nameof(GemmAvx512VnniGenerated.IsAvailable))!;
                for (int use = 0; use < 2; use++)
                {
                    var error = Assert.Throws<TargetInvocationException>(() => available.GetValue(null)).InnerException;
                    Assert.NotNull(error);
                    Assert.Equal(typeof(QuantGenConfigurationException).FullName, error.GetType().FullName);
                    Assert.Contains("QUANTGEN_JIT=\"maybe\"", error.Message);
                    Assert.Contains("0 (off)", error.Message);
                }
            });
        }
        finally
        {
            Environment.SetEnvironmentVariable(GemmAvx512VnniGenerated.SwitchVariable, jitBefore);
            Environment.SetEnvironmentVariable(KernelDispatch.OverrideVariable, isaBefore);
        }
    }

    private static void WithFreshRuntime(Action<Assembly> test)
    {
        var context = new AssemblyLoadContext("QuantGen.Runtime with QUANTGEN_JIT set", isCollectible: true);
        try
        {
            Assembly runtime = context.LoadFromAssemblyPath(typeof(KernelDispatch).Assembly.Location);
            Assert.NotSame(typeof(KernelDispatch).Assembly, runtime);
            test(runtime);
        }
        finally
        {
            context.Unload();
        }
    }
}
