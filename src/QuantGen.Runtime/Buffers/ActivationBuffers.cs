using System;

namespace QuantGen.Buffers;

/// <summary>
/// The activation memory of one forward call: a fixed number of reusable <see cref="BufferSlot"/>s. The
/// generator assigns every intermediate tensor of <c>forward</c> a slot from the tensors' lifetimes (two
/// tensors share a slot only when the first is dead before the second is written), and each layer call
/// writes its output into its slot, so a steady-state forward allocates nothing.
/// </summary>
/// <remarks>Not thread-safe: one forward call uses a set at a time (a generated model rents one per call from its <see cref="ActivationBufferPool"/>).</remarks>
public sealed class ActivationBuffers
{
    private readonly BufferSlot[] _slots;

    /// <param name="slotCount">How many slots the buffer plan uses (0 or more).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="slotCount"/> is negative.</exception>
    public ActivationBuffers(int slotCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slotCount);
        _slots = new BufferSlot[slotCount];
        for (int i = 0; i < slotCount; i++)
        {
            _slots[i] = new BufferSlot();
        }
    }

    /// <summary>Number of slots.</summary>
    public int Count => _slots.Length;

    /// <summary>Bytes currently held by all slots (their buffers' capacities).</summary>
    public long Bytes
    {
        get
        {
            long total = 0;
            foreach (BufferSlot slot in _slots)
            {
                total += slot.Capacity;
            }

            return total;
        }
    }

    /// <summary>Slot <paramref name="slot"/> (0-based).</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such slot.</exception>
    public BufferSlot this[int slot]
    {
        get
        {
            if ((uint)slot >= (uint)_slots.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(slot), slot, $"ActivationBuffers: slot {slot} does not exist; there are {_slots.Length}.");
            }

            return _slots[slot];
        }
    }
}
