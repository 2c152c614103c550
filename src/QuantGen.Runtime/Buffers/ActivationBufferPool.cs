using System;

namespace QuantGen.Buffers;

/// <summary>
/// The activation memory of one model instance for any number of concurrent forward calls: each call rents
/// a whole <see cref="ActivationBuffers"/> set, writes its intermediates there and returns it, so two calls
/// never share a slot. Renting and returning are lock-free; a set is created only when every set is in use
/// (one per call running at the same time, kept for the next calls), so a steady-state forward allocates nothing.
/// </summary>
/// <remarks>
/// A set is warm once it has run a forward (its slots have grown to the plan's sizes and cached their views);
/// returned sets are put back in the lowest free place, so a model called from one thread keeps reusing one set.
/// At most <see cref="Capacity"/> idle sets are kept; a set returned when the pool is full is left to the
/// garbage collector (only when more calls than that ran at once).
/// </remarks>
public sealed class ActivationBufferPool
{
    private readonly int _slotCount;
    private readonly IdlePool<ActivationBuffers> _sets;

    /// <param name="slotCount">How many slots each set has (the buffer plan's slot count, 0 or more).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="slotCount"/> is negative.</exception>
    public ActivationBufferPool(int slotCount)
        : this(slotCount, DefaultCapacity)
    {
    }

    /// <param name="slotCount">How many slots each set has (0 or more).</param>
    /// <param name="capacity">How many idle sets are kept at most (1 or more).</param>
    /// <exception cref="ArgumentOutOfRangeException">A negative slot count or a capacity below 1.</exception>
    public ActivationBufferPool(int slotCount, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slotCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _slotCount = slotCount;
        _sets = new IdlePool<ActivationBuffers>(capacity, () => new ActivationBuffers(slotCount));
    }

    /// <summary>
    /// Idle sets kept by default: more than the calls a machine runs at once in practice (threads beyond the
    /// cores are descheduled mid-forward while holding a set), at least 16.
    /// </summary>
    public static int DefaultCapacity { get; } = Math.Max(16, 2 * Environment.ProcessorCount);

    /// <summary>How many idle sets are kept at most.</summary>
    public int Capacity => _sets.Capacity;

    /// <summary>How many slots each set has.</summary>
    public int SlotCount => _slotCount;

    /// <summary>How many sets this pool has created (the most calls that held one at the same time, give or take a race).</summary>
    public int Created => _sets.Created;

    /// <summary>An idle set, or a new one when every set is in use. The caller owns it until <see cref="Return"/>.</summary>
    public ActivationBuffers Rent() => _sets.Rent();

    /// <summary>Gives back a set from <see cref="Rent"/>; the caller must not use it (or tensors viewing its slots) afterwards.</summary>
    /// <param name="buffers">The rented set.</param>
    /// <exception cref="ArgumentNullException"><paramref name="buffers"/> is null.</exception>
    /// <exception cref="ArgumentException">The set has another slot count (it is not from this pool).</exception>
    public void Return(ActivationBuffers buffers)
    {
        ArgumentNullException.ThrowIfNull(buffers);
        if (buffers.Count != _slotCount)
        {
            throw new ArgumentException($"ActivationBufferPool: a set of {buffers.Count} slots cannot come from this pool of {_slotCount}-slot sets.", nameof(buffers));
        }

        // When full (more calls ran at once than the pool keeps sets for), the set goes to the garbage collector.
        _sets.Return(buffers);
    }
}
