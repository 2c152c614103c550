using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace FashionMnist;

/// <summary>
/// Reads the IDX format of LeCun's MNIST files (and Zalando's Fashion-MNIST): two zero bytes, a type byte (0x08 for
/// unsigned bytes, the only type these datasets use), the number of dimensions, each dimension as a big-endian int32,
/// then the values in row-major order. Files ending in <c>.gz</c> are decompressed on the fly.
/// </summary>
public static class Idx
{
    /// <summary>Reads an IDX file (gzip-compressed when its name ends in .gz).</summary>
    /// <param name="path">The file.</param>
    /// <returns>The dimensions and the bytes.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">Not an unsigned-byte IDX file, or truncated (the message names the file).</exception>
    public static (int[] Shape, byte[] Data) ReadFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using FileStream file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        return Read(stream, path);
    }

    /// <summary>Reads IDX data (already decompressed) from a stream.</summary>
    /// <param name="stream">The IDX bytes.</param>
    /// <param name="name">What to call the source in error messages.</param>
    /// <returns>The dimensions and the bytes.</returns>
    /// <exception cref="InvalidDataException">Not an unsigned-byte IDX stream, or truncated.</exception>
    public static (int[] Shape, byte[] Data) Read(Stream stream, string name = "IDX stream")
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[4];
        ReadExactly(stream, header, name, "the 4-byte header");
        if (header[0] != 0 || header[1] != 0)
        {
            throw new InvalidDataException($"{name}: not an IDX file (the first two bytes are 0x{header[0]:X2} 0x{header[1]:X2}, expected 0x00 0x00).");
        }

        if (header[2] != 0x08)
        {
            throw new InvalidDataException($"{name}: IDX value type 0x{header[2]:X2} is not supported; Fashion-MNIST uses 0x08 (unsigned byte).");
        }

        int rank = header[3];
        if (rank < 1)
        {
            throw new InvalidDataException($"{name}: an IDX file needs at least one dimension, got {rank}.");
        }

        var shape = new int[rank];
        Span<byte> dimension = stackalloc byte[4];
        long count = 1;
        for (int d = 0; d < rank; d++)
        {
            ReadExactly(stream, dimension, name, $"dimension {d}");
            shape[d] = BinaryPrimitives.ReadInt32BigEndian(dimension);
            if (shape[d] < 0)
            {
                throw new InvalidDataException($"{name}: dimension {d} is negative ({shape[d]}).");
            }

            count *= shape[d];
        }

        if (count > Array.MaxLength)
        {
            throw new InvalidDataException($"{name}: {count} values ([{string.Join(", ", shape)}]) do not fit in one array.");
        }

        var data = new byte[count];
        ReadExactly(stream, data, name, $"{count} values for shape [{string.Join(", ", shape)}]");
        return (shape, data);
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, string name, string what)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int read = stream.Read(buffer[total..]);
            if (read == 0)
            {
                throw new InvalidDataException($"{name}: truncated: expected {what} ({buffer.Length} bytes), got {total}.");
            }

            total += read;
        }
    }
}

/// <summary>One split of Fashion-MNIST: 28×28 grey images (bytes) and their labels 0..9.</summary>
public sealed class FashionMnistSplit
{
    /// <summary>Image side.</summary>
    public const int Side = 28;

    /// <summary>Mean of the training pixels scaled to [0, 1] (the usual normalisation constant).</summary>
    public const float PixelMean = 0.2860f;

    /// <summary>Standard deviation of the training pixels scaled to [0, 1].</summary>
    public const float PixelStd = 0.3530f;

    /// <summary>The ten class names, by label.</summary>
    public static readonly string[] ClassNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Creates a split from raw bytes.</summary>
    /// <param name="pixels">Count × 784 bytes, row-major.</param>
    /// <param name="labels">Count labels in 0..9.</param>
    /// <exception cref="ArgumentException">Lengths that do not match, or a label outside 0..9.</exception>
    public FashionMnistSplit(byte[] pixels, byte[] labels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        if (pixels.Length != labels.Length * Side * Side)
        {
            throw new ArgumentException($"Fashion-MNIST: {labels.Length} labels need {labels.Length * Side * Side} pixels, got {pixels.Length}.", nameof(pixels));
        }

        int bad = Array.FindIndex(labels, l => l > 9);
        if (bad >= 0)
        {
            throw new ArgumentException($"Fashion-MNIST: label {labels[bad]} at index {bad} is outside 0..9.", nameof(labels));
        }

        Pixels = pixels;
        LabelBytes = labels;
    }

    /// <summary>Count × 784 pixel bytes.</summary>
    public byte[] Pixels { get; }

    /// <summary>Labels 0..9.</summary>
    public byte[] LabelBytes { get; }

    /// <summary>Number of images.</summary>
    public int Count => LabelBytes.Length;

    /// <summary>Images [start, start + count) as a slice sharing nothing with this split.</summary>
    public FashionMnistSplit Slice(int start, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + count, Count);
        return new FashionMnistSplit(Pixels.AsSpan(start * Side * Side, count * Side * Side).ToArray(), LabelBytes.AsSpan(start, count).ToArray());
    }

    /// <summary>Images [start, start + count) as normalised float values ((x / 255 − mean) / std), logical [count, 1, 28, 28] order.</summary>
    public float[] NormalizedValues(int start, int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + count, Count);
        var values = new float[count * Side * Side];
        ReadOnlySpan<byte> source = Pixels.AsSpan(start * Side * Side, values.Length);
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = ((source[i] / 255f) - PixelMean) / PixelStd;
        }

        return values;
    }

    /// <summary>Images [start, start + count) as a normalised float32 tensor [count, 1, 28, 28].</summary>
    public Tensor Images(int start, int count) => torch.tensor(NormalizedValues(start, count), [count, 1, Side, Side], ScalarType.Float32);

    /// <summary>Labels [start, start + count) as an int64 tensor.</summary>
    public Tensor Labels(int start, int count)
    {
        var labels = new long[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = LabelBytes[start + i];
        }

        return torch.tensor(labels, ScalarType.Int64);
    }
}

/// <summary>
/// Fashion-MNIST (Zalando, 60 000 training and 10 000 test images in ten classes) read from the IDX files Debian's
/// <c>dataset-fashion-mnist</c> package installs in <see cref="DefaultDirectory"/>.
/// </summary>
public sealed class FashionMnistData
{
    /// <summary>Where Debian's package puts the files.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>The Debian package that provides the files.</summary>
    public const string DebianPackage = "dataset-fashion-mnist";

    /// <summary>Environment variable that overrides <see cref="DefaultDirectory"/>.</summary>
    public const string DirectoryVariable = "FASHION_MNIST_DIR";

    /// <summary>The four files, as the package (and Zalando's download) names them.</summary>
    public static readonly string[] FileNames = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"];

    private FashionMnistData(FashionMnistSplit train, FashionMnistSplit test, string directory)
    {
        Train = train;
        Test = test;
        Directory = directory;
    }

    /// <summary>The training split (60 000 images unless limited).</summary>
    public FashionMnistSplit Train { get; }

    /// <summary>The test split (10 000 images unless limited).</summary>
    public FashionMnistSplit Test { get; }

    /// <summary>The directory the files were read from.</summary>
    public string Directory { get; }

    /// <summary>
    /// The directory to read: <paramref name="directory"/> if given, else <c>$FASHION_MNIST_DIR</c>, else
    /// <see cref="DefaultDirectory"/>.
    /// </summary>
    public static string ResolveDirectory(string? directory = null)
    {
        if (!string.IsNullOrEmpty(directory))
        {
            return directory;
        }

        string? fromEnvironment = Environment.GetEnvironmentVariable(DirectoryVariable);
        return string.IsNullOrEmpty(fromEnvironment) ? DefaultDirectory : fromEnvironment;
    }

    /// <summary>Reads both splits.</summary>
    /// <param name="directory">Directory with the four IDX files (.gz or uncompressed); null for <see cref="ResolveDirectory"/>.</param>
    /// <param name="trainLimit">Read only the first this many training images; null for all.</param>
    /// <param name="testLimit">Read only the first this many test images; null for all.</param>
    /// <exception cref="FileNotFoundException">A file is missing; the message names the Debian package that installs them.</exception>
    /// <exception cref="InvalidDataException">A file is not the expected IDX data.</exception>
    public static FashionMnistData Load(string? directory = null, int? trainLimit = null, int? testLimit = null)
    {
        string root = ResolveDirectory(directory);
        FashionMnistSplit train = LoadSplit(root, FileNames[0], FileNames[1], trainLimit);
        FashionMnistSplit test = LoadSplit(root, FileNames[2], FileNames[3], testLimit);
        return new FashionMnistData(train, test, root);
    }

    private static FashionMnistSplit LoadSplit(string root, string imagesFile, string labelsFile, int? limit)
    {
        (int[] imageShape, byte[] pixels) = Idx.ReadFile(Locate(root, imagesFile));
        (int[] labelShape, byte[] labels) = Idx.ReadFile(Locate(root, labelsFile));
        if (imageShape.Length != 3 || imageShape[1] != FashionMnistSplit.Side || imageShape[2] != FashionMnistSplit.Side)
        {
            throw new InvalidDataException($"{Path.Combine(root, imagesFile)}: expected images [N, 28, 28], got [{string.Join(", ", imageShape)}].");
        }

        if (labelShape.Length != 1 || labelShape[0] != imageShape[0])
        {
            throw new InvalidDataException($"{Path.Combine(root, labelsFile)}: expected {imageShape[0]} labels (one per image), got [{string.Join(", ", labelShape)}].");
        }

        var split = new FashionMnistSplit(pixels, labels);
        return limit is int n && n < split.Count ? split.Slice(0, Math.Max(0, n)) : split;
    }

    /// <summary>The file, or its uncompressed twin (name without .gz); else a FileNotFoundException naming the Debian package.</summary>
    private static string Locate(string root, string fileName)
    {
        string path = Path.Combine(root, fileName);
        if (File.Exists(path))
        {
            return path;
        }

        string uncompressed = path[..^3];
        if (File.Exists(uncompressed))
        {
            return uncompressed;
        }

        throw new FileNotFoundException(
            $"Fashion-MNIST: {path} not found. The dataset comes from Debian's {DebianPackage} package, which installs the four IDX files " +
            $"({string.Join(", ", FileNames)}) in {DefaultDirectory}: run 'sudo apt-get install {DebianPackage}', " +
            $"or point --data (or ${DirectoryVariable}) at a directory holding them.",
            path);
    }
}
