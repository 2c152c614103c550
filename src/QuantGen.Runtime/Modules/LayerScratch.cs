using System;
using QuantGen.Kernels;

namespace QuantGen.Modules;

/// <summary>
/// The working memory the int8 layers need during one <c>Forward</c> call — their inputs converted to the
/// kernels' layout, int32 accumulators, the kernels' <see cref="KernelScratch"/> — held per thread rather than
/// per layer, so that one layer (and one model) can run on many threads at once without sharing mutable memory.
/// </summary>
/// <remarks>
/// <para>
/// A layer takes <see cref="Current"/> at the start of <c>Forward</c> and uses it only until it returns; a layer's
/// <c>Forward</c> calls no user code and no other layer, so two users of one thread's scratch never overlap.
/// The kernel pool's workers use their own scratch (<see cref="KernelThreads"/>), never this one.
/// </para>
/// <para>
/// The arrays grow to the largest request and are kept: a thread's first forward allocates them, later ones
/// allocate nothing. The memory lives as long as the thread (one set for every layer and model the thread runs,
/// less than the per-layer copies it replaces).
/// </para>
/// </remarks>
internal sealed class LayerScratch
{
    [ThreadStatic]
    private static LayerScratch? t_current;

    private byte[][] _inputs = [];
    private int[] _accumulators = [];

    private LayerScratch()
    {
    }

    /// <summary>This thread's scratch (created on its first use).</summary>
    public static LayerScratch Current => t_current ??= new LayerScratch();

    /// <summary>The kernels' working memory for the calling thread's part of a kernel call.</summary>
    public KernelScratch Kernel { get; } = new();

    /// <summary>
    /// <see cref="LayerChecks.InputView"/> of <paramref name="tensor"/>, converted (when it must be) into input
    /// buffer <paramref name="index"/>: a layer reading several inputs at once gives each its own index.
    /// </summary>
    public ReadOnlySpan<byte> InputView(int index, QTensor tensor, MemoryFormat format) =>
        LayerChecks.InputView(tensor, format, ref InputBuffer(index));

    /// <summary>Input buffer <paramref name="index"/> with at least <paramref name="length"/> bytes (contents unspecified).</summary>
    public Span<byte> Bytes(int index, int length)
    {
        ref byte[] buffer = ref InputBuffer(index);
        if (buffer.Length < length)
        {
            buffer = new byte[length];
        }

        return buffer.AsSpan(0, length);
    }

    /// <summary><paramref name="count"/> int32 accumulators (contents unspecified).</summary>
    public Span<int> Accumulators(int count)
    {
        if (_accumulators.Length < count)
        {
            _accumulators = new int[count];
        }

        return _accumulators.AsSpan(0, count);
    }

    private ref byte[] InputBuffer(int index)
    {
        if (index >= _inputs.Length)
        {
            int old = _inputs.Length;
            Array.Resize(ref _inputs, Math.Max(index + 1, 2));
            for (int i = old; i < _inputs.Length; i++)
            {
                _inputs[i] = [];
            }
        }

        return ref _inputs[index];
    }
}
