using System;

namespace QuantGen.Kernels;

/// <summary>
/// Reusable working memory for the int8 kernels (im2col rows of one tile, widened rows, the int32 tile,
/// row sums, one output row of accumulators, and for the scalar path a whole accumulator block). Arrays
/// grow on first use and are then reused, so a steady-state call allocates nothing. Not thread-safe:
/// one instance per layer (or per thread).
/// </summary>
public sealed class KernelScratch
{
    private byte[] _rows = [];
    private ushort[] _wideRows = [];
    private int[] _tile = [];
    private int[] _rowSums = [];
    private int[] _accumulators = [];

    /// <summary>Bytes currently held (for tests and reports).</summary>
    public long Bytes => _rows.Length + (2L * _wideRows.Length) + (4L * (_tile.Length + _rowSums.Length + _accumulators.Length));

    internal byte[] Rows(int length) => Grow(ref _rows, length);

    internal ushort[] WideRows(int length) => Grow(ref _wideRows, length);

    internal int[] Tile(int length) => Grow(ref _tile, length);

    internal int[] RowSums(int length) => Grow(ref _rowSums, length);

    internal int[] Accumulators(int length) => Grow(ref _accumulators, length);

    private static T[] Grow<T>(ref T[] array, int length)
    {
        if (array.Length < length)
        {
            array = new T[Math.Max(length, 16)];
        }

        return array;
    }
}
