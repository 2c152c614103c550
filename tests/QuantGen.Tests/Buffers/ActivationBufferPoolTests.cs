using System;
using QuantGen.Buffers;

namespace QuantGen.Tests.Buffers;

/// <summary>
/// The per-model pool a generated forward rents its activation buffers from: a set is never handed to two renters
/// at once, a returned set is reused (it is the warm one), and the pool keeps no more idle sets than its capacity.
/// </summary>
public class ActivationBufferPoolTests
{
    [Fact]
    public void ARenterGetsBackTheSetReturnedBefore()
    {
        var pool = new ActivationBufferPool(3);
        ActivationBuffers first = pool.Rent();
        pool.Return(first);
        Assert.Same(first, pool.Rent());
        Assert.Equal(1, pool.Created);
        Assert.Equal(3, first.Count);
    }

    [Fact]
    public void RentersHoldingSetsAtOnceGetDistinctSets()
    {
        var pool = new ActivationBufferPool(2);
        ActivationBuffers a = pool.Rent(), b = pool.Rent(), c = pool.Rent();
        Assert.NotSame(a, b);
        Assert.NotSame(b, c);
        Assert.NotSame(a, c);
        Assert.NotSame(a[0], b[0]);
        Assert.Equal(3, pool.Created);

        // All three come back and are reused before anything new is made.
        pool.Return(a);
        pool.Return(b);
        pool.Return(c);
        ActivationBuffers[] again = [pool.Rent(), pool.Rent(), pool.Rent()];
        Assert.Equal(3, pool.Created);
        Assert.Contains(a, again);
        Assert.Contains(b, again);
        Assert.Contains(c, again);
    }

    [Fact]
    public void AFullPoolLetsAnExtraSetGo()
    {
        var pool = new ActivationBufferPool(1, capacity: 1);
        ActivationBuffers a = pool.Rent(), b = pool.Rent();
        pool.Return(a);
        pool.Return(b); // no room: dropped
        Assert.Same(a, pool.Rent());
        ActivationBuffers fresh = pool.Rent();
        Assert.NotSame(b, fresh);
        Assert.Equal(3, pool.Created);
    }

    [Fact]
    public void ASetOfAnotherSizeIsRefused()
    {
        var pool = new ActivationBufferPool(2);
        var error = Assert.Throws<ArgumentException>(() => pool.Return(new ActivationBuffers(3)));
        Assert.Contains("3 slots", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ActivationBufferPool(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ActivationBufferPool(1, capacity: 0));
    }
}
