using System;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using System.Runtime.Loader;
using QuantGen.Serialization;
using QuantGen.Tests.Modules;
using static QuantGen.Tests.Serialization.SerializationTestSupport;

namespace QuantGen.Tests.Serialization;

/// <summary>
/// Loading a <c>.qgen</c> file and running its layers must never touch TorchSharp (an AOT app ships
/// without libtorch). A second copy of QuantGen.Runtime is loaded into its own load context that
/// refuses to resolve TorchSharp; the file is opened, every layer read and the chain run there. Any
/// TorchSharp type on that path — in the serializer, a codec, a layer constructor, the kernels —
/// makes the JIT ask for the assembly, and the test fails.
/// </summary>
public sealed class NoTorchSharpTests
{
    private delegate object QuantizeForward(ReadOnlySpan<float> values, int[] shape);

    [Fact]
    public void AFileLoadsAndRunsWhereTorchSharpCannotBeResolved()
    {
        LayerListModel model = SmallChain(seed: 21);
        byte[] file = SaveToBytes(model);
        float[] input = ContractReference.RandomFloats(new Random(22), 2 * 2 * 4 * 4, -3f, 3f);
        int[] shape = [2, 2, 4, 4];
        float[] expected = model.forward(input, shape, out int[] expectedShape);

        var context = new NoTorchSharpContext();
        try
        {
            Assembly runtime = context.LoadFromAssemblyPath(typeof(QGenFile).Assembly.Location);
            Assert.NotSame(typeof(QGenFile).Assembly, runtime);

            object reader = runtime.GetType("QuantGen.Serialization.QGenFile", throwOnError: true)!
                .GetMethod("OpenRead", [typeof(Stream), typeof(string), typeof(string)])!
                .Invoke(null, [new MemoryStream(file), Model, Hash])!;
            MethodInfo read = reader.GetType().GetMethod("Read")!;
            object Layer(string type, string name) =>
                read.MakeGenericMethod(runtime.GetType("QuantGen.Modules." + type, throwOnError: true)!).Invoke(reader, [name])!;

            object quant = Layer("QuantizeInput", "quant");
            var layers = new List<object> { Layer("QuantizedConv2d", "conv1"), Layer("QuantizedMaxPool2d", "pool"), Layer("QuantizedFlatten", "flatten"), Layer("QuantizedLinear", "fc") };
            ((IDisposable)reader).Dispose();

            var quantize = (QuantizeForward)Delegate.CreateDelegate(typeof(QuantizeForward), quant, quant.GetType().GetMethod("Forward", [typeof(ReadOnlySpan<float>), typeof(int[])])!);
            object x = quantize(input, shape);
            Assert.NotSame(typeof(QTensor), x.GetType()); // the isolated copy's QTensor
            foreach (object layer in layers)
            {
                x = layer.GetType().GetMethod("Forward", [x.GetType()])!.Invoke(layer, [x])!;
            }

            var actual = (float[])x.GetType().GetMethod("Dequantize", Type.EmptyTypes)!.Invoke(x, null)!;
            Assert.Equal(expectedShape, (int[])x.GetType().GetProperty("Shape")!.GetValue(x)!);
            Assert.Equal(Bits(expected), Bits(actual));
            Assert.Empty(context.Refused);
        }
        finally
        {
            context.Unload();
        }
    }

    [Fact]
    public void TheContextReallyRefusesTorchSharp()
    {
        // The guard itself: resolving TorchSharp in the isolated context fails (else the test above proves nothing).
        var context = new NoTorchSharpContext();
        try
        {
            Assert.ThrowsAny<Exception>(() => context.LoadFromAssemblyName(new AssemblyName("TorchSharp")));
            Assert.Equal(["TorchSharp"], context.Refused);
        }
        finally
        {
            context.Unload();
        }
    }

    /// <summary>Loads QuantGen's own assemblies afresh, shares the framework with the default context, and refuses TorchSharp.</summary>
    private sealed class NoTorchSharpContext() : AssemblyLoadContext("no-torchsharp", isCollectible: true)
    {
        public List<string> Refused { get; } = [];

        protected override Assembly? Load(AssemblyName name)
        {
            if (name.Name!.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase))
            {
                Refused.Add(name.Name);
                throw new FileNotFoundException($"TorchSharp is not available in this context (asked for {name}).");
            }

            if (name.Name.StartsWith("QuantGen.", StringComparison.Ordinal))
            {
                string path = Path.Combine(Path.GetDirectoryName(typeof(QGenFile).Assembly.Location)!, name.Name + ".dll");
                return LoadFromAssemblyPath(path);
            }

            return null; // the framework: shared with the default context
        }
    }
}
