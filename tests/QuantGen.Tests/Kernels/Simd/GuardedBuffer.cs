using System;
using System.Runtime.InteropServices;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>
/// A byte buffer placed against an inaccessible page (MLAS's guard-page test buffers): with
/// <see cref="Placement.AgainstEnd"/> its last byte is the last one before a PROT_NONE page, so reading or
/// writing one byte past the end kills the test process with SIGSEGV; with <see cref="Placement.AgainstStart"/>
/// its first byte follows such a page, which catches reads before the start. Linux only.
/// </summary>
internal sealed unsafe class GuardedBuffer : IDisposable
{
    private const int ProtNone = 0, ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 0x02, MapAnonymous = 0x20;

    private readonly nint _mapping;
    private readonly nuint _mappedLength;

    public enum Placement
    {
        AgainstEnd,
        AgainstStart,
    }

    public GuardedBuffer(int length, Placement placement)
    {
        if (length < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(length));
        }

        nuint page = (nuint)Environment.SystemPageSize;
        nuint usable = ((nuint)length + page - 1) / page * page;
        _mappedLength = usable + (2 * page);
        _mapping = mmap(0, _mappedLength, ProtNone, MapPrivate | MapAnonymous, -1, 0);
        if (_mapping == -1)
        {
            throw new InvalidOperationException($"mmap failed (errno {Marshal.GetLastPInvokeError()}).");
        }

        byte* first = (byte*)_mapping + page;
        if (mprotect((nint)first, usable, ProtRead | ProtWrite) != 0)
        {
            throw new InvalidOperationException($"mprotect failed (errno {Marshal.GetLastPInvokeError()}).");
        }

        Pointer = placement == Placement.AgainstEnd ? first + usable - (nuint)length : first;
        Length = length;
    }

    public static bool Supported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    public byte* Pointer { get; }

    public int Length { get; }

    public Span<byte> Span => new(Pointer, Length);

    /// <summary>A buffer holding a copy of <paramref name="data"/>.</summary>
    public static GuardedBuffer Of<T>(ReadOnlySpan<T> data, Placement placement)
        where T : unmanaged
    {
        ReadOnlySpan<byte> bytes = MemoryMarshal.AsBytes(data);
        var buffer = new GuardedBuffer(Math.Max(bytes.Length, 1), placement);
        bytes.CopyTo(buffer.Span);
        return buffer;
    }

    /// <summary>Code copied into read-write pages that are then made read-execute (never unmapped: test only).</summary>
    public static nint MapExecutable(ReadOnlySpan<byte> code)
    {
        nuint page = (nuint)Environment.SystemPageSize;
        nuint length = ((nuint)code.Length + page - 1) / page * page;
        nint address = mmap(0, length, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        Assert.NotEqual(-1, address);
        code.CopyTo(new Span<byte>((void*)address, code.Length));
        Assert.Equal(0, mprotect(address, length, ProtRead | ProtExec));
        return address;
    }

    public void Dispose() => _ = munmap(_mapping, _mappedLength);

    [DllImport("libc", SetLastError = true)]
    private static extern nint mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc", SetLastError = true)]
    private static extern int mprotect(nint address, nuint length, int protection);

    [DllImport("libc", SetLastError = true)]
    private static extern int munmap(nint address, nuint length);
}
