using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Text;
using QuantGen.Modules;
using QuantGen.Serialization;
using static QuantGen.Tests.Serialization.SerializationTestSupport;

namespace QuantGen.Tests.Serialization;

/// <summary>
/// Damaged, forged and mismatched files: each refused with a <see cref="QGenFormatException"/> that names
/// the file and the problem, before anything large is allocated. Patched files are re-sealed with the
/// test's own CRC-32C where the point is to reach the checks after the checksum.
/// </summary>
public sealed class HostileFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("qgen-tests-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static byte[] SmallFile() => SaveToBytes(SmallChain());

    private static QGenFormatException Rejected(byte[] bytes, QGenFormatError? error = null, string model = Model, string hash = Hash)
    {
        var ex = Assert.Throws<QGenFormatException>(() => LoadLayers(bytes, SmallChain(), model, hash));
        if (error is not null)
        {
            Assert.Equal(error, ex.Error);
        }

        Assert.StartsWith(ex.FileName + ":", ex.Message);
        return ex;
    }

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void TheSmallFileLoadsAndItsLayoutIsAsDocumented()
    {
        byte[] file = SmallFile();
        Assert.InRange(file.Length, 200, 2000);
        Assert.Equal("QGEN\r\n\u001A\n"u8.ToArray(), file[..8]);
        Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(FileLayout.VersionAt)));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(FileLayout.FlagsAt)));
        Assert.Equal((ulong)(file.Length - 24), BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(FileLayout.BodyLengthAt)));
        Assert.Equal(FileLayout.Crc32C(file.AsSpan(0, file.Length - 4)), BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(file.Length - 4)));
        Assert.Equal(["quant", "conv1", "pool", "flatten", "fc"], FileLayout.Records(file).Select(r => r.Name));

        IQuantizedLayer[] loaded = LoadLayers(file, SmallChain());
        Assert.Equal(5, loaded.Length);
    }

    [Fact]
    public void TheTestsCrc32CIsTheStandardOne()
    {
        // The published check value of CRC-32C (Castagnoli), so the re-sealing below is the real checksum.
        Assert.Equal(0xE3069283u, FileLayout.Crc32C("123456789"u8));
    }

    [Fact]
    public void EveryTruncationIsRefused()
    {
        byte[] file = SmallFile();
        for (int length = 0; length < file.Length; length++)
        {
            QGenFormatException ex = Rejected(file[..length], QGenFormatError.Truncated);
            Assert.Contains("truncated", ex.Message);
        }
    }

    [Fact]
    public void EveryTruncationIsRefusedFromANonSeekableStream()
    {
        byte[] file = SmallFile();
        for (int length = 0; length < file.Length; length++)
        {
            var ex = Assert.Throws<QGenFormatException>(() => QGenFile.OpenRead(new TrickleStream(file[..length]), Model, Hash));
            Assert.Equal(QGenFormatError.Truncated, ex.Error);
        }

        using QGenReader whole = QGenFile.OpenRead(new TrickleStream(file), Model, Hash);
        Assert.Equal(5, whole.Layers.Count);
    }

    [Fact]
    public void ATruncatedFileOnDiskIsNamedInTheMessage()
    {
        byte[] file = SmallFile();
        string path = Write("cut.qgen", file[..(file.Length / 2)]);
        var ex = Assert.Throws<QGenFormatException>(() => QGenFile.OpenRead(path, Model, Hash));
        Assert.Equal(QGenFormatError.Truncated, ex.Error);
        Assert.Equal(path, ex.FileName);
        Assert.StartsWith(path + ": truncated: the header says the file is " + file.Length + " bytes", ex.Message);
    }

    [Fact]
    public void FlippingAnyByteIsRefused()
    {
        byte[] file = SmallFile();
        int bodyEnd = file.Length - 4;
        for (int i = 0; i < file.Length; i++)
        {
            byte[] damaged = (byte[])file.Clone();
            damaged[i] ^= 0x10;
            QGenFormatException ex = Rejected(damaged);

            // Past the preamble every flip must be caught by the checksum, before any field is parsed.
            if (i >= FileLayout.BodyAt)
            {
                Assert.Equal(QGenFormatError.ChecksumMismatch, ex.Error);
            }
        }

        byte[] last = (byte[])file.Clone();
        last[bodyEnd - 1] ^= 1;
        Assert.Contains("checksum mismatch", Rejected(last, QGenFormatError.ChecksumMismatch).Message);
    }

    [Fact]
    public void OtherFilesAreNotModelFiles()
    {
        Assert.Contains("not a QuantGen model file", Rejected("hello, world\n"u8.ToArray(), QGenFormatError.BadMagic).Message);
        Rejected([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0], QGenFormatError.BadMagic); // a PNG
        Rejected("QGEX"u8.ToArray(), QGenFormatError.BadMagic);                                         // wrong already in the first bytes
        byte[] file = SmallFile();
        file[3] = (byte)'X';
        Rejected(file, QGenFormatError.BadMagic);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(0xFFFF)]
    public void AnotherFormatVersionIsRefused(int version)
    {
        byte[] file = SmallFile();
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(FileLayout.VersionAt), (ushort)version);
        QGenFormatException ex = Rejected(FileLayout.Reseal(file), QGenFormatError.UnsupportedVersion);
        Assert.Contains($"format version {version}; this build of QuantGen reads versions 1 to 2", ex.Message);
    }

    [Fact]
    public void AVersion1FileStillLoads()
    {
        // Version 2 changed only how the integer weights of dynamic and weight-only float ops are stored; this model has
        // none, so its version-1 file is the same bytes with another version number.
        byte[] file = SmallFile();
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(FileLayout.VersionAt), 1);
        byte[] version1 = FileLayout.Reseal(file);
        Assert.Equal(1, QGenFile.ReadInfo(new MemoryStream(version1)).Version);
        LoadLayers(version1, SmallChain(), Model, Hash);
    }

    [Fact]
    public void UnknownFlagsAreRefused()
    {
        byte[] file = SmallFile();
        file[FileLayout.FlagsAt] = 4;
        Assert.Contains("flags 0x0004", Rejected(FileLayout.Reseal(file), QGenFormatError.UnknownFlags).Message);
    }

    [Theory]
    [InlineData(1L << 31)]           // 2 GiB: over the format's limit
    [InlineData(long.MaxValue)]
    [InlineData((1L << 30) + 5)]     // 1 GiB: allowed by the format, but the file is not that long
    public void ABodyLengthClaimingGigabytesAllocatesNothingLarge(long claim)
    {
        byte[] file = SmallFile();
        BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(FileLayout.BodyLengthAt), claim);
        long before = GC.GetAllocatedBytesForCurrentThread();
        QGenFormatException seekable = Rejected(file);
        var chunked = Assert.Throws<QGenFormatException>(() => QGenFile.OpenRead(new TrickleStream(file), Model, Hash));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        QGenFormatError expected = claim > int.MaxValue ? QGenFormatError.TooLarge : QGenFormatError.Truncated;
        Assert.Equal(expected, seekable.Error);
        Assert.Equal(expected, chunked.Error);
        Assert.True(allocated < 1_000_000, $"{allocated} bytes allocated while refusing a {claim}-byte claim");
    }

    [Fact]
    public void APayloadLengthClaimingGigabytesIsRefusedBeforeAllocating()
    {
        byte[] file = SmallFile();
        var conv = FileLayout.Records(file).Single(r => r.Name == "conv1");
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(conv.LengthAt), 0xF000_0000u);
        long before = GC.GetAllocatedBytesForCurrentThread();
        QGenFormatException ex = Rejected(FileLayout.Reseal(file), QGenFormatError.Malformed);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("layer 'conv1''s payload (4026531840 bytes", ex.Message);
        Assert.True(allocated < 1_000_000, $"{allocated} bytes allocated");
    }

    [Fact]
    public void ALayerCountClaimingBillionsIsRefused()
    {
        byte[] file = SmallFile();
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(FileLayout.LayerCountAt(file)), 0xFFFF_FFFFu);
        Assert.Contains("the layer count is 4294967295, over the limit", Rejected(FileLayout.Reseal(file), QGenFormatError.Malformed).Message);

        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(FileLayout.LayerCountAt(file)), 90_000u);
        Assert.Contains("needs 900000 bytes", Rejected(FileLayout.Reseal(file), QGenFormatError.Malformed).Message);
    }

    [Fact]
    public void AWeightShapeClaimingGigabytesIsRefusedBeforeAllocating()
    {
        // conv1's payload: 11 option ints, then the weight: rank byte, then its dims.
        byte[] file = SmallFile();
        var conv = FileLayout.Records(file).Single(r => r.Name == "conv1");
        int dims = conv.PayloadAt + (11 * 4) + 1;
        Assert.Equal(3, BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(dims))); // out channels: the layout is as documented
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(dims), 1_000_000_000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        QGenFormatException ex = Rejected(FileLayout.Reseal(file), QGenFormatError.Malformed);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1_000_000);
        Assert.Contains("layer 'conv1' (Conv2d record): the weight shape [1000000000, 2, 3, 3] needs more bytes than", ex.Message);
    }

    [Fact]
    public void AStringLongerThanTheLimitIsRefused()
    {
        byte[] file = SmallFile();
        var quant = FileLayout.Records(file)[0];
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(quant.KindAt + 2), 60_000); // the name's length
        Assert.Contains("claims 60000 bytes; names are at most 1024", Rejected(FileLayout.Reseal(file), QGenFormatError.Malformed).Message);
    }

    [Fact]
    public void AnUnknownLayerKindIsRefused()
    {
        byte[] file = SmallFile();
        var pool = FileLayout.Records(file)[2];
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(pool.KindAt), 999);
        Assert.Contains("layer record 2 has kind 999", Rejected(FileLayout.Reseal(file), QGenFormatError.Malformed).Message);
    }

    [Fact]
    public void StoredValuesTheConstructorRejectsNameTheLayer()
    {
        // quant's payload: dtype byte, axis, count, scale. A negative scale passes the framing but not QuantizeInput.
        byte[] file = SmallFile();
        var quant = FileLayout.Records(file)[0];
        BinaryPrimitives.WriteSingleLittleEndian(file.AsSpan(quant.PayloadAt + 1 + 4 + 4), -0.5f);
        QGenFormatException ex = Rejected(FileLayout.Reseal(file), QGenFormatError.InvalidLayer);
        Assert.Contains("layer 'quant' (Quantize record", ex.Message);
        Assert.IsAssignableFrom<ArgumentException>(ex.InnerException);

        // A bool stored as 7 is malformed, not silently true.
        file = SmallFile();
        var conv = FileLayout.Records(file).Single(r => r.Name == "conv1");
        file[conv.PayloadAt + conv.PayloadLength - 2] = 7; // fused relu, just before the backend byte
        Assert.Contains("fused relu is stored as 7", Rejected(FileLayout.Reseal(file), QGenFormatError.Malformed).Message);
    }

    [Fact]
    public void APayloadLongerThanItsLayerIsRefused()
    {
        // Grow flatten's payload by 4 bytes (and the body length with it): the record is then longer than a Flatten.
        byte[] file = SmallFile();
        var flatten = FileLayout.Records(file).Single(r => r.Name == "flatten");
        int end = flatten.PayloadAt + flatten.PayloadLength;
        byte[] grown = [.. file[..end], 0, 0, 0, 0, .. file[end..]];
        BinaryPrimitives.WriteInt32LittleEndian(grown.AsSpan(flatten.LengthAt), flatten.PayloadLength + 4);
        BinaryPrimitives.WriteUInt64LittleEndian(grown.AsSpan(FileLayout.BodyLengthAt), (ulong)(grown.Length - 24));
        Assert.Contains("4 bytes of the payload are left over after a complete Flatten layer", Rejected(FileLayout.Reseal(grown), QGenFormatError.Malformed).Message);
    }

    [Fact]
    public void AnotherModelIsRefusedByName()
    {
        QGenFormatException ex = Rejected(SmallFile(), QGenFormatError.ModelMismatch, model: "ResNet18");
        Assert.EndsWith(": the file holds model Net, not ResNet18.", ex.Message);
    }

    [Fact]
    public void AnotherVersionOfTheModelIsRefusedByGraphHash()
    {
        string path = Write("old.qgen", SmallFile());
        var ex = Assert.Throws<QGenFormatException>(() => QGenFile.OpenRead(path, Model, "fedcba9876543210"));
        Assert.Equal(QGenFormatError.GraphMismatch, ex.Error);
        Assert.StartsWith($"{path}: the file was saved from a different version of model Net (graph {Hash}, this build is fedcba9876543210); re-export it", ex.Message);
    }

    [Fact]
    public void LayersThatDoNotLineUpAreRefused()
    {
        byte[] file = SmallFile();

        // Another name where the model expects conv1.
        using (QGenReader reader = QGenFile.OpenRead(new MemoryStream(file), Model, Hash))
        {
            reader.Read<QuantizeInput>("quant");
            var ex = Assert.Throws<QGenFormatException>(() => reader.Read<QuantizedConv2d>("conv0"));
            Assert.Equal(QGenFormatError.LayerMismatch, ex.Error);
            Assert.Contains("expects layer 'conv0' (Conv2d) as record 1, but the file has 'conv1' (Conv2d) there", ex.Message);
        }

        // The right name but another class.
        using (QGenReader reader = QGenFile.OpenRead(new MemoryStream(file), Model, Hash))
        {
            reader.Read<QuantizeInput>("quant");
            var ex = Assert.Throws<QGenFormatException>(() => reader.Read<QuantizedLinear>("conv1"));
            Assert.Contains("layer 'conv1' is a Conv2d record, but model Net expects a Linear (QuantizedLinear)", ex.Message);
            Assert.Throws<QGenFormatException>(() => reader.ReadOptional<QuantizedLinear>("conv1"));
        }

        // The model reads more layers than the file has.
        using (QGenReader reader = QGenFile.OpenRead(new MemoryStream(file), Model, Hash))
        {
            foreach (IQuantizedLayer layer in SmallChain().Layers)
            {
                ReadLike(reader, layer);
            }

            Assert.Null(reader.ReadOptional<QuantizedReLU>("relu"));
            var ex = Assert.Throws<QGenFormatException>(() => reader.Read<QuantizedReLU>("relu"));
            Assert.Contains("expects layer 'relu' (ReLU) next, but the file ends after its 5 layer records", ex.Message);
        }
    }

    [Fact]
    public void RecordsTheModelDoesNotReadAreRefusedWhenTheReaderCloses()
    {
        QGenReader reader = QGenFile.OpenRead(new MemoryStream(SmallFile()), Model, Hash);
        reader.Read<QuantizeInput>("quant");
        reader.Read<QuantizedConv2d>("conv1");
        var ex = Assert.Throws<QGenFormatException>(reader.Dispose);
        Assert.Equal(QGenFormatError.LayerMismatch, ex.Error);
        Assert.Contains("model Net read 2 layers, but the file holds 5; not read: 'pool' (MaxPool2d), 'flatten' (Flatten), 'fc' (Linear)", ex.Message);
        Assert.Throws<ObjectDisposedException>(() => reader.Read<QuantizedMaxPool2d>("pool"));
    }

    [Fact]
    public void OptionalLayersAbsentFromTheFileReadAsNull()
    {
        QParams q = QParams.PerTensor(0.1f, 10, QuantDType.QUInt8);
        var model = new LayerListModel(Model, Hash, new QuantizeInput(Model, "quant", q), new QuantizedReLU(Model, "relu"));
        using QGenReader reader = QGenFile.OpenRead(new MemoryStream(SaveToBytes(model)), Model, Hash);
        Assert.NotNull(reader.Read<QuantizeInput>("quant"));
        Assert.Null(reader.ReadOptional<QuantizedConv2d>("downsample.0"));   // another name next: absent, nothing consumed
        Assert.Equal(1, reader.LayersRead);
        Assert.NotNull(reader.ReadOptional<QuantizedReLU>("relu"));
        Assert.Null(reader.ReadOptional<QuantizedConv2d>("downsample.1"));   // end of file: absent
    }

    [Fact]
    public void TrailingBytesAfterTheModelAreRefusedInAFile()
    {
        byte[] file = SmallFile();
        string path = Write("appended.qgen", [.. file, .. "garbage"u8]);
        var ex = Assert.Throws<QGenFormatException>(() => QGenFile.OpenRead(path, Model, Hash));
        Assert.Equal(QGenFormatError.TrailingData, ex.Error);
        Assert.Contains("7 bytes follow the end of the model", ex.Message);
        Assert.Equal(QGenFormatError.TrailingData, Assert.Throws<QGenFormatException>(() => QGenFile.ReadInfo(path)).Error);

        // A stream holds one model from its position on and is left just after it (a container may follow).
        var stream = new MemoryStream([.. file, .. "next"u8]);
        using (QGenFile.OpenRead(stream, Model, Hash))
        {
        }

        Assert.Equal(file.Length, stream.Position);
    }

    [Fact]
    public void BytesAfterTheLastRecordInsideTheBodyAreRefused()
    {
        byte[] file = SmallFile();
        byte[] padded = [.. file[..^4], 1, 2, 3, 0, 0, 0, 0];
        BinaryPrimitives.WriteUInt64LittleEndian(padded.AsSpan(FileLayout.BodyLengthAt), (ulong)(padded.Length - 24));
        Assert.Contains("3 bytes follow the last of the 5 layer records", Rejected(FileLayout.Reseal(padded), QGenFormatError.TrailingData).Message);
    }

    [Fact]
    public void ALayerTheFormatCannotHoldIsRefusedAtSaveNamingModelAndLayer()
    {
        QParams q = QParams.PerTensor(0.1f, 10, QuantDType.QUInt8);
        var model = new LayerListModel(Model, Hash, new QuantizeInput(Model, "quant", q), new UnknownLayer(Model, "head.island"));
        var ex = Assert.Throws<NotSupportedException>(() => SaveToBytes(model));
        Assert.StartsWith("Net: layer 'head.island' is a QuantGen.Tests.Serialization.UnknownLayer, which a .qgen file cannot hold", ex.Message);
        string path = Path.Combine(_directory, "island.qgen");
        Assert.Throws<NotSupportedException>(() => QGenFile.Save(path, model));
        Assert.Empty(Directory.GetFiles(_directory)); // no half-written file left behind
    }

    [Fact]
    public void SavingToAPathReplacesTheFileAndReadInfoDescribesIt()
    {
        string path = Path.Combine(_directory, "m.qgen");
        File.WriteAllText(path, "an older file");
        QGenFile.Save(path, SmallChain());
        Assert.Equal(SmallFile(), File.ReadAllBytes(path)); // deterministic: same model, same bytes
        QGenFileInfo info = QGenFile.ReadInfo(path);
        Assert.Equal(path, info.FileName);
        Assert.Equal(new FileInfo(path).Length, info.ByteSize);
        string text = info.ToString();
        Assert.StartsWith($"{path}: .qgen v2, model Net, graph {Hash}, {info.ByteSize} bytes, 5 layers, crc32c ", text);
        Assert.Contains("conv1", text);
        Assert.Equal(new[] { "m.qgen" }, Directory.GetFiles(_directory).Select(Path.GetFileName));
    }

    /// <summary>A non-seekable stream that hands out at most 7 bytes per read.</summary>
    private sealed class TrickleStream(byte[] data) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(Math.Min(count, 7), data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
