using System;
using System.Collections;
using System.IO;
using System.Reflection;
using System.Runtime.Loader;
using QuantGen.Kernels;
using QuantGen.Serialization;
using QuantGen.Tests.Generator.Models.Fashion;
using QuantGen.Tests.Kernels.Simd;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Kernels;

/// <summary>
/// A bad <c>QUANTGEN_THREADS</c> or <c>QUANTGEN_ISA</c> in a process that starts with it: the settings are read when
/// first needed, so every use reports the variable and its value as a <see cref="QuantGenConfigurationException"/>
/// (not a <see cref="TypeInitializationException"/> that poisons the class for the rest of the process), setting the
/// degree in code still works, and loading a model file reports the setting rather than a corrupt file.
/// </summary>
/// <remarks>
/// A process reads the settings once, so the start of a process is reproduced by loading a second copy of
/// QuantGen.Runtime in a collectible <see cref="AssemblyLoadContext"/> while the variables hold the bad values. The
/// test runs alone (its collection), after this process's own copy has read and kept the good values, and puts the
/// variables back before it ends.
/// </remarks>
[Collection(KernelThreadsCollection.Name)]
public sealed class BadEnvironmentSettingTests
{
    [Fact]
    public void AFreshRuntimeReportsBadSettingsAtEveryUseNamingTheVariableAndTheValue()
    {
        // This copy keeps what it read: changing the variables below cannot reach it (or the tests after this one).
        _ = KernelThreads.MaxDegreeOfParallelism;
        _ = KernelDispatch.Isa;
        byte[] file = SavedFashionCnn(out string modelName, out string graphHash);

        string? threadsBefore = Environment.GetEnvironmentVariable(KernelThreads.EnvironmentVariable);
        string? isaBefore = Environment.GetEnvironmentVariable(KernelDispatch.OverrideVariable);
        var context = new AssemblyLoadContext("QuantGen.Runtime with bad settings", isCollectible: true);
        try
        {
            Environment.SetEnvironmentVariable(KernelThreads.EnvironmentVariable, "abc");
            Environment.SetEnvironmentVariable(KernelDispatch.OverrideVariable, "bogus");
            Assembly runtime = context.LoadFromAssemblyPath(typeof(KernelThreads).Assembly.Location);
            Assert.NotSame(typeof(KernelThreads).Assembly, runtime);

            PropertyInfo degree = runtime.GetType("QuantGen.Kernels.KernelThreads", throwOnError: true)!.GetProperty(nameof(KernelThreads.MaxDegreeOfParallelism))!;
            for (int use = 0; use < 2; use++)
            {
                AssertConfigurationError(Thrown(() => degree.GetValue(null)), "QUANTGEN_THREADS", "abc", "positive integer");
            }

            // A degree set in code does not need the variable.
            degree.SetValue(null, 2);
            Assert.Equal(2, degree.GetValue(null));

            PropertyInfo isa = runtime.GetType("QuantGen.Kernels.KernelDispatch", throwOnError: true)!.GetProperty(nameof(KernelDispatch.Isa))!;
            for (int use = 0; use < 2; use++)
            {
                AssertConfigurationError(Thrown(() => isa.GetValue(null)), "QUANTGEN_ISA", "bogus", "avx2");
            }

            // Loading a model packs its weights for the kernel that will run, which asks for the ISA.
            Type fileType = runtime.GetType("QuantGen.Serialization.QGenFile", throwOnError: true)!;
            object reader = fileType.GetMethod(nameof(QGenFile.OpenRead), [typeof(Stream), typeof(string), typeof(string)])!
                .Invoke(null, [new MemoryStream(file), modelName, graphHash])!;
            MethodInfo read = reader.GetType().GetMethod("Read")!;
            Exception? loadError = null;
            foreach (object layer in (IEnumerable)reader.GetType().GetProperty("Layers")!.GetValue(reader)!)
            {
                // Read<T> takes the layer's own class: QuantizeInput for the input, Quantized{Kind} for the others.
                string name = (string)layer.GetType().GetProperty("Name")!.GetValue(layer)!;
                string kind = layer.GetType().GetProperty("Kind")!.GetValue(layer)!.ToString()!;
                Type layerType = runtime.GetType(kind == "Quantize" ? "QuantGen.Modules.QuantizeInput" : "QuantGen.Modules.Quantized" + kind, throwOnError: true)!;
                loadError = Thrown(() => read.MakeGenericMethod(layerType).Invoke(reader, [name]));
                if (loadError is not null)
                {
                    break;
                }
            }

            Assert.NotNull(loadError);
            AssertConfigurationError(loadError, "QUANTGEN_ISA", "bogus", "avx2");
        }
        finally
        {
            Environment.SetEnvironmentVariable(KernelThreads.EnvironmentVariable, threadsBefore);
            Environment.SetEnvironmentVariable(KernelDispatch.OverrideVariable, isaBefore);
            context.Unload();
        }
    }

    /// <summary>The exception <paramref name="action"/> threw through reflection, or null.</summary>
    private static Exception? Thrown(Func<object?> action)
    {
        try
        {
            action();
            return null;
        }
        catch (TargetInvocationException wrapped)
        {
            return wrapped.InnerException;
        }
    }

    private static void AssertConfigurationError(Exception? error, string variable, string value, string accepted)
    {
        Assert.NotNull(error);

        // The other copy's type, so by name; the base type is shared.
        Assert.True(error.GetType().FullName == typeof(QuantGenConfigurationException).FullName, $"expected a QuantGenConfigurationException, got {error}");
        Assert.IsAssignableFrom<InvalidOperationException>(error);
        Assert.Contains($"{variable}=\"{value}\"", error.Message);
        Assert.Contains(accepted, error.Message);
    }

    private static byte[] SavedFashionCnn(out string modelName, out string graphHash)
    {
        torch.manual_seed(3);
        using var model = new FashionCnn();
        model.eval();
        using FashionCnn.Observed observed = model.Prepare();
        using (torch.no_grad())
        {
            using Tensor batch = torch.randn(2, 1, 28, 28);
            observed.forward(batch).Dispose();
        }

        FashionCnn.Quantized int8 = observed.Convert();
        using var stream = new MemoryStream();
        int8.Save(stream);
        byte[] bytes = stream.ToArray();
        QGenFileInfo info = QGenFile.ReadInfo(new MemoryStream(bytes));
        (modelName, graphHash) = (info.Model, info.GraphHash);
        return bytes;
    }
}
