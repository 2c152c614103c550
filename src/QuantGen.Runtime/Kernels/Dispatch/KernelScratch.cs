using System;

namespace QuantGen.Kernels;

/// <summary>
/// Reusable working memory for the int8 kernels (im2col rows of one tile, widened rows, the int32 tile,
/// row sums, one output row of accumulators, a transposed convolution's GEMM columns, and for the scalar path a whole accumulator block). Arrays
/// grow on first use and are then reused, so a steady-state call allocates nothing. Not thread-safe:
/// one kernel call at a time per instance (the int8 layers use their calling thread's, so one layer can run on
/// many threads at once). The calling thread of a kernel uses the scratch it passes; the worker threads of
/// <see cref="KernelThreads"/> each use their own.
/// </summary>
public sealed class KernelScratch
{
    private byte[] _rows = [];
    private ushort[] _wideRows = [];
    private int[] _tile = [];
    private int[] _rowSums = [];
    private int[] _accumulators = [];
    private int[] _compensation = [];
    private nint[] _pointers = [];
    private byte[] _padRow = [];
    private byte[] _paddedInput = [];
    private int[] _columns = [];
    private GemmJob? _gemmJob;
    private DepthwiseJob? _depthwiseJob;
    private ColumnScatterJob? _columnScatterJob;

    /// <summary>Bytes currently held (for tests and reports).</summary>
    public long Bytes => _rows.Length + (2L * _wideRows.Length) + (4L * (_tile.Length + _rowSums.Length + _accumulators.Length + _compensation.Length + _columns.Length)) + (8L * _pointers.Length) + _padRow.Length + _paddedInput.Length;

    internal byte[] Rows(int length) => Grow(ref _rows, length);

    internal ushort[] WideRows(int length) => Grow(ref _wideRows, length);

    internal int[] Tile(int length) => Grow(ref _tile, length);

    internal int[] RowSums(int length) => Grow(ref _rowSums, length);

    internal int[] Accumulators(int length) => Grow(ref _accumulators, length);

    internal int[] Compensation(int length) => Grow(ref _compensation, length);

    internal nint[] Pointers(int length) => Grow(ref _pointers, length);

    internal byte[] PadRow(int length) => Grow(ref _padRow, length);

    internal byte[] PaddedInput(int length) => Grow(ref _paddedInput, length);

    /// <summary>The int32 GEMM columns of one band of a transposed convolution (<see cref="ConvTranspose2dKernel"/>), before col2im.</summary>
    internal int[] Columns(int length) => Grow(ref _columns, length);

    /// <summary>The reusable work item for this caller's parallel GEMMs (created once).</summary>
    internal GemmJob GemmJob => _gemmJob ??= new GemmJob();

    /// <summary>The reusable work item for this caller's parallel depthwise convolutions (created once).</summary>
    internal DepthwiseJob DepthwiseJob => _depthwiseJob ??= new DepthwiseJob();

    /// <summary>The reusable work item for this caller's parallel transposed-convolution col2im (created once).</summary>
    internal ColumnScatterJob ColumnScatterJob => _columnScatterJob ??= new ColumnScatterJob();

    private static T[] Grow<T>(ref T[] array, int length)
    {
        if (array.Length < length)
        {
            array = new T[Math.Max(length, 16)];
        }

        return array;
    }
}
