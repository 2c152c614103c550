using System;

namespace QuantGen.Tests.Kernels;

/// <summary>Layout helpers for the kernel tests: logical NCHW integer arrays ↔ NHWC byte buffers.</summary>
internal static class NhwcLayout
{
    /// <summary>NCHW integers (each 0..255) → NHWC bytes.</summary>
    public static byte[] ToNhwc(int[] nchw, int n, int c, int h, int w)
    {
        var bytes = new byte[nchw.Length];
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int y = 0; y < h; y++)
                {
                    for (int x = 0; x < w; x++)
                    {
                        bytes[((((b * h) + y) * w) + x) * c + ch] = checked((byte)nchw[(((b * c) + ch) * h + y) * w + x]);
                    }
                }
            }
        }

        return bytes;
    }

    /// <summary>NHWC values → NCHW integers.</summary>
    public static int[] ToNchw(ReadOnlySpan<byte> nhwc, int n, int c, int h, int w)
    {
        var values = new int[nhwc.Length];
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int y = 0; y < h; y++)
                {
                    for (int x = 0; x < w; x++)
                    {
                        values[(((b * c) + ch) * h + y) * w + x] = nhwc[((((b * h) + y) * w) + x) * c + ch];
                    }
                }
            }
        }

        return values;
    }

    /// <summary>NHWC int32 values → NCHW.</summary>
    public static int[] ToNchw(ReadOnlySpan<int> nhwc, int n, int c, int h, int w)
    {
        var values = new int[nhwc.Length];
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int y = 0; y < h; y++)
                {
                    for (int x = 0; x < w; x++)
                    {
                        values[(((b * c) + ch) * h + y) * w + x] = nhwc[((((b * h) + y) * w) + x) * c + ch];
                    }
                }
            }
        }

        return values;
    }
}
