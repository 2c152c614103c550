using System;
using System.Buffers.Binary;
using System.Linq;
using QuantGen.Modules;
using QuantGen.Serialization;
using static QuantGen.Tests.Serialization.SerializationTestSupport;

namespace QuantGen.Tests.Serialization;

/// <summary>
/// The fuzzer's findings of issue 12, each as a file forged by hand: one int32 of a layer's options
/// changed and the checksum recomputed. Each is refused at Load as InvalidLayer, naming the layer and the
/// field — or, where the value is within QuantGen's bounds, refused at Forward by name; never an
/// AccessViolation, OverflowException, out-of-memory or hang in the kernels.
/// </summary>
public sealed class ForgedGeometryTests
{
    // Payload offsets of the options (docs/model-file.md): conv 11 × i32, transposed conv 13 × i32, pool 8 × i32.
    private const int ConvPadHeight = 6 * 4, ConvDilationHeight = 8 * 4, ConvDilationWidth = 9 * 4;
    private const int DeconvStrideHeight = 4 * 4, DeconvStrideWidth = 5 * 4;
    private const int PoolStrideHeight = 2 * 4;

    /// <summary>quant → conv (2→4, 3×3, padding 1) → ConvTranspose2d (4→4, 2×2, stride 2) → maxpool 2.</summary>
    private static LayerListModel Decoder()
    {
        var random = new Random(3);
        QParams qx = QParams.PerTensor(0.02f, 120, QuantDType.QUInt8);
        QParams qa = QParams.PerTensor(0.03f, 128, QuantDType.QUInt8);
        return new LayerListModel(Model, Hash,
            new QuantizeInput(Model, "quant", qx),
            Conv(random, "enc", new Conv2dOptions(2, 4, 3, 3, PadHeight: 1, PadWidth: 1), perChannel: true, bias: true, qx, qa, relu: false, QuantBackend.X86),
            ConvTranspose(random, "up", new ConvTranspose2dOptions(4, 4, 2, 2, 2, 2), perChannel: false, bias: true, qa, qa, relu: false, QuantBackend.X86),
            new QuantizedMaxPool2d(Model, "pool", Pool2dOptions.Square(2)));
    }

    private static byte[] Forge(LayerListModel model, string layer, int payloadOffset, params int[] values)
    {
        byte[] file = SaveToBytes(model);
        var record = FileLayout.Records(file).Single(r => r.Name == layer);
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(record.PayloadAt + payloadOffset + (4 * i)), values[i]);
        }

        return FileLayout.Reseal(file);
    }

    private static QGenFormatException RefusedAtLoad(byte[] file, LayerListModel like, string layer, string field)
    {
        var ex = Assert.Throws<QGenFormatException>(() => LoadLayers(file, like));
        Assert.Equal(QGenFormatError.InvalidLayer, ex.Error);
        Assert.Contains($"layer '{layer}'", ex.Message);
        Assert.Contains($"Net.{layer}: {field} must be", ex.Message);
        return ex;
    }

    [Theory]
    [InlineData(0x7FFFFFFE)]
    [InlineData(65536)]
    public void AForgedConvDilationIsRefusedAtLoadNamingLayerAndField(int dilation)
    {
        // Before: dilation 0x7FFFFFFE loaded and read out of bounds in GemmAvxVnni.Kernel6x16Indirect.
        QGenFormatException ex = RefusedAtLoad(Forge(SmallChain(), "conv1", ConvDilationHeight, dilation, dilation), SmallChain(), "conv1", "dilation");
        Assert.Contains($"got ({dilation}, {dilation})", ex.Message);
        Assert.Contains("at most 65,535", ex.Message);
    }

    [Theory]
    [InlineData(0x08000000)]
    [InlineData(16777216)]
    public void AForgedConvPaddingIsRefusedAtLoad(int padding)
    {
        // Before: 0x08000000 loaded and threw OverflowException in Forward; 2^24 allocated until out of memory.
        QGenFormatException ex = RefusedAtLoad(Forge(SmallChain(), "conv1", ConvPadHeight, padding), SmallChain(), "conv1", "padding");
        Assert.Contains($"got ({padding}, 1)", ex.Message);
    }

    [Fact]
    public void ADilationWhoseExtentExceedsTheBoundIsRefusedAtLoad()
    {
        // Each value is within 65,535, but d·(k−1)+1 = 40000·2+1 is not: the kernels' reach must fit too.
        QGenFormatException ex = Assert.Throws<QGenFormatException>(() => LoadLayers(Forge(SmallChain(), "conv1", ConvDilationWidth, 40000), SmallChain()));
        Assert.Equal(QGenFormatError.InvalidLayer, ex.Error);
        Assert.Contains("Net.conv1: the dilated kernel extent dilation·(kernel_size−1)+1 = (3, 80001) must be at most 65,535", ex.Message);
    }

    [Theory]
    [InlineData(65536)]
    [InlineData(int.MaxValue)]
    public void AForgedTransposedConvStrideBeyondTheBoundIsRefusedAtLoad(int stride)
    {
        RefusedAtLoad(Forge(Decoder(), "up", DeconvStrideHeight, stride, stride), Decoder(), "up", "stride");
    }

    [Theory]
    [InlineData(46341)]
    [InlineData(65535)]
    public void ATransposedConvStrideWithinTheBoundIsRefusedAtForwardWhenItsOutputWouldBeTooLarge(int stride)
    {
        // Before: strides of 46,341-65,536 hung in the kernel. Within the field bound the file loads; the run is
        // refused by the output-plane bound (64x per side), with the layer, the input and the limit in the message.
        LayerListModel decoder = Decoder();
        IQuantizedLayer[] loaded = LoadLayers(Forge(decoder, "up", DeconvStrideHeight, stride, stride), decoder);
        var up = (QuantizedConvTranspose2d)loaded[2];
        Assert.Equal(stride, up.Options.StrideHeight);
        QTensor x = ((QuantizeInput)loaded[0]).Forward(new float[4 * 6 * 6], [1, 4, 6, 6]);
        var ex = Assert.Throws<ArgumentException>(() => up.Forward(x));
        Assert.StartsWith("Net.up: input [1, 4, 6, 6] would give an output plane of ", ex.Message);
        Assert.Contains("expected at most 147,456 positions (4096× the input's 36", ex.Message);
        Assert.Contains($"stride=({stride}, {stride})", ex.Message);
    }

    [Fact]
    public void ATransposedConvStrideOf64StillRuns()
    {
        // The bound must not refuse what a real decoder does: stride 64 grows the plane exactly 4096x.
        LayerListModel decoder = Decoder();
        IQuantizedLayer[] loaded = LoadLayers(Forge(decoder, "up", DeconvStrideHeight, 64, 64), decoder);
        QTensor x = ((QuantizeInput)loaded[0]).Forward(new float[4 * 6 * 6], [1, 4, 6, 6]);
        QTensor y = ((QuantizedConvTranspose2d)loaded[2]).Forward(x);
        Assert.Equal([1, 4, (5 * 64) + 2, (5 * 64) + 2], y.Shape);
    }

    [Fact]
    public void AForgedPoolStrideIsRefusedAtLoad()
    {
        RefusedAtLoad(Forge(Decoder(), "pool", PoolStrideHeight, 0x7FFFFFFF), Decoder(), "pool", "stride");
    }

    [Fact]
    public void AForgedAdaptivePoolSizeIsRefusedAtLoad()
    {
        var like = new LayerListModel(Model, Hash, new QuantizeInput(Model, "quant", QParams.PerTensor(0.1f, 0, QuantDType.QUInt8)), new QuantizedAdaptiveAvgPool2d(Model, "gap", 1, 1));
        RefusedAtLoad(Forge(like, "gap", 0, 16777216), like, "gap", "output_size");
    }

    [Fact]
    public void AForgedDilationWithinTheBoundGivesAnotherModelThatTheNextLayerRefusesByName()
    {
        // A forged value inside the bounds is another valid geometry: the checksum cannot tell (it only catches
        // accidents). Here conv1's output shrinks, and fc says so by name instead of reading out of bounds.
        LayerListModel chain = SmallChain();
        IQuantizedLayer[] loaded = LoadLayers(Forge(chain, "conv1", ConvDilationHeight, 2, 2), chain);
        var model = new LayerListModel(Model, Hash, loaded);
        var ex = Assert.Throws<ArgumentException>(() => model.forward(new float[2 * 4 * 4], [1, 2, 4, 4], out _));
        Assert.StartsWith("Net.fc: expected input [N, 12]", ex.Message);
    }
}
