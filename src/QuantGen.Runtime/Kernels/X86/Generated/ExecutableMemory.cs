using System;
using System.Runtime.InteropServices;

namespace QuantGen.Kernels.X86.Generated;

/// <summary>
/// Puts machine code into memory the CPU may execute, W^X style: pages mapped read-write, the code copied in,
/// then switched to read-execute (never writable and executable at once). Linux only (mmap/mprotect from
/// libc); elsewhere, or when the system refuses (an SELinux/PaX policy that forbids making pages executable, a
/// sandbox without mmap), <see cref="TryMap"/> says why and the caller keeps the managed kernels.
/// The pages live for the rest of the process: the kernels are generated once and cached.
/// </summary>
internal static unsafe partial class ExecutableMemory
{
    private const int ProtRead = 1;
    private const int ProtWrite = 2;
    private const int ProtExec = 4;
    private const int MapPrivate = 0x02;
    private const int MapAnonymous = 0x20; // Linux value (differs on the BSDs and macOS, which are not used here)

    /// <summary>True where this class can try at all: Linux on x64.</summary>
    public static bool PlatformHasIt => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>
    /// Copies <paramref name="code"/> into fresh read-execute pages. Returns the address, or 0 with
    /// <paramref name="error"/> saying which step failed and the system's error number.
    /// </summary>
    public static nint TryMap(ReadOnlySpan<byte> code, out string? error)
    {
        if (!PlatformHasIt)
        {
            error = $"executable memory is only requested on Linux x64 (this is {RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture})";
            return 0;
        }

        if (code.IsEmpty)
        {
            error = "no code to map";
            return 0;
        }

        nuint length = RoundToPage((nuint)code.Length);
        nint address = Mmap(0, length, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (address == -1 || address == 0)
        {
            error = $"mmap of {length} read-write bytes failed (errno {Marshal.GetLastPInvokeError()})";
            return 0;
        }

        code.CopyTo(new Span<byte>((void*)address, code.Length));
        if (Mprotect(address, length, ProtRead | ProtExec) != 0)
        {
            error = $"mprotect to read-execute failed (errno {Marshal.GetLastPInvokeError()}); the system forbids executable memory here";
            _ = Munmap(address, length);
            return 0;
        }

        error = null;
        return address;
    }

    private static nuint RoundToPage(nuint length)
    {
        nuint page = (nuint)Environment.SystemPageSize;
        return (length + page - 1) / page * page;
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(nint address, nuint length, int protection);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint address, nuint length);
}
