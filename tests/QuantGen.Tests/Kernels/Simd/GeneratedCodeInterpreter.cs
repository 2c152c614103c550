using System;
using System.Collections.Generic;
using System.Buffers.Binary;
using Iced.Intel;

namespace QuantGen.Tests.Kernels.Simd;

/// <summary>
/// Executes generated kernel code instruction by instruction (decoded with Iced) on an emulated x64 state, for
/// machines whose CPU has no AVX-512 VNNI: the exact bytes the runtime maps are checked for their results and
/// for every memory access. Memory is a set of regions the test provides at made-up addresses; a read or write
/// of any byte outside them fails the test (stricter than a guard page, and on both sides). Only the
/// instructions the emitter uses are known — anything else fails, so a change in the emitter shows here.
/// Semantics follow the Intel SDM for the forms used: <c>vpdpbusd</c> adds, per int32 lane, the four products
/// of unsigned bytes of the first source with signed bytes of the second to the destination, wrapping.
/// </summary>
internal sealed class GeneratedCodeInterpreter
{
    private const ulong ReturnSentinel = 0xDEAD_0000_0000_0000;
    private readonly List<(ulong Start, byte[] Data, string Name)> _regions = [];
    private readonly ulong[] _gpr = new ulong[16];
    private readonly byte[][] _zmm = new byte[32][];
    private ulong _nextAddress = 0x1000_0000;
    private bool _zf, _sf, _cf, _of;

    public GeneratedCodeInterpreter()
    {
        for (int i = 0; i < _zmm.Length; i++)
        {
            _zmm[i] = new byte[64];
        }
    }

    /// <summary>Instructions executed by the last <see cref="Call"/>.</summary>
    public long Executed { get; private set; }

    /// <summary>Adds <paramref name="data"/> as memory (shared, not copied) and returns its address; regions are 4 KiB apart.</summary>
    public ulong Map(byte[] data, string name)
    {
        ulong start = _nextAddress;
        _regions.Add((start, data, name));
        _nextAddress += ((ulong)data.Length + 0x2000) & ~0xFFFUL;
        return start;
    }

    /// <summary>Runs <paramref name="code"/> from byte 0 with the System V integer arguments until it returns.</summary>
    public void Call(byte[] code, params ulong[] arguments)
    {
        // Caller-saved registers start with garbage so the code cannot rely on them; rbx, rbp, r12–r15 are checked after.
        var random = new Random(code.Length);
        for (int i = 0; i < 16; i++)
        {
            _gpr[i] = (ulong)random.NextInt64();
        }

        foreach (byte[] z in _zmm)
        {
            random.NextBytes(z);
        }

        ulong[] calleeSaved = [_gpr[3], _gpr[5], _gpr[12], _gpr[13], _gpr[14], _gpr[15]];
        int[] argumentRegisters = [7, 6, 2, 1, 8, 9]; // rdi, rsi, rdx, rcx, r8, r9
        for (int i = 0; i < arguments.Length; i++)
        {
            _gpr[argumentRegisters[i]] = arguments[i];
        }

        byte[] stack = new byte[256];
        ulong stackBase = Map(stack, "stack");
        _gpr[4] = stackBase + 248; // rsp at the return address
        Write(_gpr[4], 8, ReturnSentinel);
        ulong rsp0 = _gpr[4];

        var reader = new ByteArrayCodeReader(code);
        var decoder = Decoder.Create(64, reader);
        ulong ip = 0;
        Executed = 0;
        while (true)
        {
            if (ip >= (ulong)code.Length)
            {
                throw new InvalidOperationException($"execution left the code at 0x{ip:X}");
            }

            reader.Position = (int)ip; // the reader, not the decoder's IP, says where the bytes come from
            decoder.IP = ip;
            decoder.Decode(out Instruction instruction);
            if (instruction.IsInvalid)
            {
                throw new InvalidOperationException($"invalid instruction at 0x{ip:X}");
            }

            if (++Executed > 50_000_000)
            {
                throw new InvalidOperationException("no return after 50 million instructions");
            }

            ip = instruction.NextIP;
            if (instruction.Mnemonic == Mnemonic.Ret)
            {
                ulong target = Read(_gpr[4], 8);
                _gpr[4] += 8;
                if (target != ReturnSentinel || _gpr[4] != rsp0 + 8)
                {
                    throw new InvalidOperationException("ret with an unbalanced stack");
                }

                break;
            }

            ip = Execute(instruction, ip);
        }

        ulong[] after = [_gpr[3], _gpr[5], _gpr[12], _gpr[13], _gpr[14], _gpr[15]];
        if (!calleeSaved.AsSpan().SequenceEqual(after))
        {
            throw new InvalidOperationException("a callee-saved register (rbx, rbp, r12–r15) was not restored");
        }

        _regions.RemoveAll(r => r.Name == "stack");
    }

    private ulong Execute(in Instruction i, ulong next)
    {
        if (i.OpMask != Register.None || i.IsBroadcast || i.SuppressAllExceptions || i.HasRepPrefix || i.HasLockPrefix)
        {
            throw new InvalidOperationException($"unexpected prefix or EVEX feature: {i}");
        }

        switch (i.Mnemonic)
        {
            case Mnemonic.Vpxord:
                Vector3(i, (a, b, d) => { for (int x = 0; x < 64; x++) { d[x] = (byte)(a[x] ^ b[x]); } });
                break;
            case Mnemonic.Vpaddd:
                Vector3(i, (a, b, d) => { for (int x = 0; x < 64; x += 4) { Int(d, x, unchecked(Int(a, x) + Int(b, x))); } });
                break;
            case Mnemonic.Vpdpbusd:
            {
                RequireZmm(i, 3);
                byte[] acc = _zmm[Zmm(i.Op0Register)], u = _zmm[Zmm(i.Op1Register)], s = _zmm[Zmm(i.Op2Register)];
                for (int lane = 0; lane < 64; lane += 4)
                {
                    int sum = Int(acc, lane);
                    for (int b = 0; b < 4; b++)
                    {
                        sum = unchecked(sum + (u[lane + b] * (sbyte)s[lane + b]));
                    }

                    Int(acc, lane, sum);
                }

                break;
            }

            case Mnemonic.Vmovdqu32:
                if (i.Op0Kind == OpKind.Register)
                {
                    RequireMemorySize(i, MemorySize.UInt32, 64);
                    ReadBlock(Address(i), _zmm[Zmm(i.Op0Register)]);
                }
                else
                {
                    WriteBlock(Address(i), _zmm[Zmm(i.Op1Register)]);
                }

                break;
            case Mnemonic.Vpbroadcastd:
            {
                uint value = i.Op1Kind == OpKind.Register ? (uint)Get(i.Op1Register) : (uint)Read(Address(i), 4);
                byte[] d = _zmm[Zmm(i.Op0Register)];
                for (int x = 0; x < 64; x += 4)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(x), value);
                }

                break;
            }

            case Mnemonic.Vzeroupper:
                for (int z = 0; z < 16; z++)
                {
                    Array.Clear(_zmm[z], 16, 48);
                }

                break;
            case Mnemonic.Lea:
                Set(i.Op0Register, Address(i));
                break;
            case Mnemonic.Mov:
                Set(i.Op0Register, i.Op1Kind == OpKind.Register ? Get(i.Op1Register) : Read(Address(i), Bytes(i.Op0Register)));
                break;
            case Mnemonic.Movzx:
                Set(i.Op0Register, Read(Address(i), i.MemorySize == MemorySize.UInt8 ? 1 : i.MemorySize == MemorySize.UInt16 ? 2 : throw new InvalidOperationException($"movzx size {i.MemorySize}")));
                break;
            case Mnemonic.Push:
                _gpr[4] -= 8;
                Write(_gpr[4], 8, Get(i.Op0Register));
                break;
            case Mnemonic.Pop:
                Set(i.Op0Register, Read(_gpr[4], 8));
                _gpr[4] += 8;
                break;
            case Mnemonic.Add:
                Arithmetic(i, subtract: false, store: true);
                break;
            case Mnemonic.Sub:
                Arithmetic(i, subtract: true, store: true);
                break;
            case Mnemonic.Cmp:
                Arithmetic(i, subtract: true, store: false);
                break;
            case Mnemonic.Dec:
            {
                bool carry = _cf;
                ulong a = Get(i.Op0Register);
                Flags(a, 1, a - 1, subtract: true, Bytes(i.Op0Register));
                _cf = carry; // dec leaves CF alone
                Set(i.Op0Register, a - 1);
                break;
            }

            case Mnemonic.Neg:
            {
                ulong a = Get(i.Op0Register);
                Flags(0, a, 0 - a, subtract: true, Bytes(i.Op0Register));
                Set(i.Op0Register, 0 - a);
                break;
            }

            case Mnemonic.Test:
            {
                ulong r = Get(i.Op0Register) & Get(i.Op1Register);
                Flags(r, 0, r, subtract: false, Bytes(i.Op0Register));
                _cf = _of = false;
                break;
            }

            case Mnemonic.Shl:
                Set(i.Op0Register, Get(i.Op0Register) << (int)(i.GetImmediate(1) & 63));
                break;
            case Mnemonic.Or:
                Set(i.Op0Register, Get(i.Op0Register) | Get(i.Op1Register));
                break;
            case Mnemonic.Jb:
                return _cf ? i.NearBranchTarget : next;
            case Mnemonic.Jae:
                return !_cf ? i.NearBranchTarget : next;
            case Mnemonic.Je:
                return _zf ? i.NearBranchTarget : next;
            case Mnemonic.Jne:
                return !_zf ? i.NearBranchTarget : next;
            case Mnemonic.Jg:
                return !_zf && _sf == _of ? i.NearBranchTarget : next;
            case Mnemonic.Jle:
                return _zf || _sf != _of ? i.NearBranchTarget : next;
            default:
                throw new InvalidOperationException($"not emulated: {i}");
        }

        return next;
    }

    private void Arithmetic(in Instruction i, bool subtract, bool store)
    {
        int size = Bytes(i.Op0Register);
        ulong a = Get(i.Op0Register);
        ulong b = i.Op1Kind == OpKind.Register ? Get(i.Op1Register) : i.GetImmediate(1);
        ulong r = subtract ? a - b : a + b;
        Flags(a, b, r, subtract, size);
        if (store)
        {
            Set(i.Op0Register, r);
        }
    }

    private void Flags(ulong a, ulong b, ulong r, bool subtract, int size)
    {
        int bits = size * 8;
        ulong mask = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        a &= mask;
        b &= mask;
        r &= mask;
        ulong sign = 1UL << (bits - 1);
        _zf = r == 0;
        _sf = (r & sign) != 0;
        _cf = subtract ? a < b : r < a;
        _of = subtract ? ((a ^ b) & (a ^ r) & sign) != 0 : (~(a ^ b) & (a ^ r) & sign) != 0;
    }

    private void Vector3(in Instruction i, Action<byte[], byte[], byte[]> operation)
    {
        RequireZmm(i, 3);
        var result = new byte[64];
        operation(_zmm[Zmm(i.Op1Register)], _zmm[Zmm(i.Op2Register)], result);
        result.CopyTo(_zmm[Zmm(i.Op0Register)], 0);
    }

    private static void RequireZmm(in Instruction i, int count)
    {
        for (int op = 0; op < count; op++)
        {
            if (i.GetOpKind(op) != OpKind.Register || !i.GetOpRegister(op).IsZMM())
            {
                throw new InvalidOperationException($"expected {count} zmm registers: {i}");
            }
        }
    }

    private static void RequireMemorySize(in Instruction i, MemorySize element, int bytes)
    {
        if (i.MemorySize.GetSize() != bytes)
        {
            throw new InvalidOperationException($"expected a {bytes}-byte {element} access: {i}");
        }
    }

    private static int Zmm(Register register) => register.IsZMM() ? register - Register.ZMM0 : throw new InvalidOperationException($"not a zmm register: {register}");

    private static int Bytes(Register register) => register.IsGPR64() ? 8 : register.IsGPR32() ? 4 : throw new InvalidOperationException($"unexpected register {register}");

    private ulong Get(Register register) => register.IsGPR64() ? _gpr[register - Register.RAX] : register.IsGPR32() ? (uint)_gpr[register - Register.EAX] : throw new InvalidOperationException($"unexpected register {register}");

    /// <summary>Writing a 32-bit register clears the upper half, as on x64.</summary>
    private void Set(Register register, ulong value)
    {
        if (register.IsGPR64())
        {
            _gpr[register - Register.RAX] = value;
        }
        else if (register.IsGPR32())
        {
            _gpr[register - Register.EAX] = (uint)value;
        }
        else
        {
            throw new InvalidOperationException($"unexpected register {register}");
        }
    }

    private ulong Address(in Instruction i)
    {
        ulong address = i.MemoryDisplacement64;
        if (i.MemoryBase != Register.None)
        {
            address += Get(i.MemoryBase);
        }

        if (i.MemoryIndex != Register.None)
        {
            address += Get(i.MemoryIndex) * (ulong)i.MemoryIndexScale;
        }

        return address;
    }

    private Span<byte> Bytes(ulong address, int length)
    {
        foreach ((ulong start, byte[] data, string name) in _regions)
        {
            if (address >= start && address - start < (ulong)data.Length)
            {
                ulong offset = address - start;
                if (offset + (ulong)length > (ulong)data.Length)
                {
                    throw new InvalidOperationException($"access of {length} bytes at {name}+{offset} runs past its end ({data.Length} bytes)");
                }

                return data.AsSpan((int)offset, length);
            }
        }

        foreach ((ulong start, byte[] data, string name) in _regions)
        {
            if (address >= start && address - start < 0x1000 + (ulong)data.Length)
            {
                throw new InvalidOperationException($"access of {length} bytes at {name}+{address - start} is past its end ({data.Length} bytes)");
            }
        }

        throw new InvalidOperationException($"access of {length} bytes at 0x{address:X} is outside every buffer");
    }

    private ulong Read(ulong address, int length)
    {
        Span<byte> bytes = Bytes(address, length);
        ulong value = 0;
        for (int b = length - 1; b >= 0; b--)
        {
            value = (value << 8) | bytes[b];
        }

        return value;
    }

    private void Write(ulong address, int length, ulong value)
    {
        Span<byte> bytes = Bytes(address, length);
        for (int b = 0; b < length; b++, value >>= 8)
        {
            bytes[b] = (byte)value;
        }
    }

    private void ReadBlock(ulong address, byte[] destination) => Bytes(address, destination.Length).CopyTo(destination);

    private void WriteBlock(ulong address, byte[] source) => source.CopyTo(Bytes(address, source.Length));

    private static int Int(byte[] bytes, int offset) => BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(offset));

    private static void Int(byte[] bytes, int offset, int value) => BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(offset), value);
}
