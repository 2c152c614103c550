using System;
using System.Threading;

namespace QuantGen.Buffers;

/// <summary>
/// Per-call state kept for the next call: lock-free rent and return over a fixed array of idle objects, a new one
/// only when every kept one is in use. Returned objects go to the lowest free place, so a caller on one thread
/// keeps reusing one object (warm caches); when the array is full a returned object is left to the collector.
/// </summary>
/// <typeparam name="T">What a call holds while it runs.</typeparam>
internal sealed class IdlePool<T>
    where T : class
{
    private readonly T?[] _idle;
    private readonly Func<T> _create;
    private int _created;

    public IdlePool(int capacity, Func<T> create)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _idle = new T?[capacity];
        _create = create ?? throw new ArgumentNullException(nameof(create));
    }

    public int Capacity => _idle.Length;

    public int Created => Volatile.Read(ref _created);

    public T Rent()
    {
        T?[] idle = _idle;
        for (int i = 0; i < idle.Length; i++)
        {
            T? item = Volatile.Read(ref idle[i]);
            if (item is not null && Interlocked.CompareExchange(ref idle[i], null, item) == item)
            {
                return item;
            }
        }

        Interlocked.Increment(ref _created);
        return _create();
    }

    public void Return(T item)
    {
        T?[] idle = _idle;
        for (int i = 0; i < idle.Length; i++)
        {
            if (Volatile.Read(ref idle[i]) is null && Interlocked.CompareExchange(ref idle[i], item, null) is null)
            {
                return;
            }
        }
    }
}
