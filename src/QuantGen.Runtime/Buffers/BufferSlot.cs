using System;

namespace QuantGen.Buffers;

/// <summary>
/// One reusable activation buffer. <see cref="Tensor"/> hands out a <see cref="QTensor"/> that is a view
/// over the slot's byte array; the array grows when a larger tensor is asked for and never shrinks, and
/// the views are cached per (shape, qparams, format), so asking again for a tensor of the same shape,
/// qparams and layout returns the same object and allocates nothing.
/// </summary>
/// <remarks>
/// <para>
/// A view's values are valid until the slot is written again (by the next layer that outputs into it):
/// whoever keeps a tensor longer copies it. Its <see cref="QTensor.Storage"/> array may be longer than
/// its element count — the elements are the first <see cref="QTensor.Count"/> bytes
/// (<see cref="QTensor.StorageBytes"/>).
/// </para>
/// <para>
/// When the array grows, every cached view is re-pointed at the new array (the old contents are not
/// kept: a slot only grows when it is about to be written). At most <see cref="MaxCachedViews"/> views
/// are cached; past that the oldest is dropped, so a model whose shapes change on every call still
/// works, allocating a view per new shape. Not thread-safe.
/// </para>
/// </remarks>
public sealed class BufferSlot
{
    /// <summary>How many distinct (shape, qparams, format) views a slot caches.</summary>
    public const int MaxCachedViews = 64;

    private byte[] _buffer = [];
    private QTensor?[] _views = new QTensor?[4];
    private int _viewCount;
    private int _nextEviction;

    /// <summary>Bytes the slot's array holds.</summary>
    public int Capacity => _buffer.Length;

    /// <summary>
    /// A tensor of <paramref name="shape"/> over this slot's buffer (contents unspecified: the caller
    /// overwrites every element). The same call with an equal shape, qparams (the same object, or equal
    /// values) and format returns the same tensor without allocating.
    /// </summary>
    /// <param name="shape">Logical shape (NCHW for 4-D).</param>
    /// <param name="qparams">Its qparams.</param>
    /// <param name="format">Its storage layout.</param>
    /// <exception cref="ArgumentException">An invalid shape, qparams or format (as <see cref="QTensor"/>'s constructor).</exception>
    public QTensor Tensor(ReadOnlySpan<int> shape, QParams qparams, MemoryFormat format)
    {
        ArgumentNullException.ThrowIfNull(qparams);
        for (int i = 0; i < _viewCount; i++)
        {
            QTensor view = _views[i]!;
            if (view.Format == format && SameQParams(view.QParams, qparams) && view.ShapeSpan.SequenceEqual(shape))
            {
                return view;
            }
        }

        // Validate before growing, so a rejected request leaves the slot as it was.
        int count = QTensor.ValidateView(shape, qparams, format);
        if (count > _buffer.Length)
        {
            // Grow to what this tensor needs, and move the cached views with the buffer.
            _buffer = new byte[count];
            for (int i = 0; i < _viewCount; i++)
            {
                _views[i]!.Rebind(_buffer);
            }
        }

        var created = new QTensor(shape.ToArray(), qparams, _buffer, count, format);
        Remember(created);
        return created;
    }

    private void Remember(QTensor view)
    {
        if (_viewCount < MaxCachedViews)
        {
            if (_viewCount == _views.Length)
            {
                Array.Resize(ref _views, Math.Min(MaxCachedViews, _views.Length * 2));
            }

            _views[_viewCount++] = view;
            return;
        }

        _views[_nextEviction] = view;
        _nextEviction = (_nextEviction + 1) % MaxCachedViews;
    }

    private static bool SameQParams(QParams a, QParams b)
    {
        if (ReferenceEquals(a, b))
        {
            return true;
        }

        return a.DType == b.DType && a.Axis == b.Axis && a.Scales.AsSpan().SequenceEqual(b.Scales) && a.ZeroPoints.AsSpan().SequenceEqual(b.ZeroPoints);
    }
}
