using System;
using System.Globalization;
using System.Text;

namespace QuantGen.Modules;

/// <summary>
/// Text shared by the layer modules: shapes in error messages and numbers printed the way PyTorch's
/// module reprs print them, so a converted model reads like <c>print(model_int8)</c>.
/// </summary>
internal static class TorchText
{
    /// <summary><c>[1, 3, 224, 224]</c>.</summary>
    public static string Shape(ReadOnlySpan<int> shape)
    {
        var text = new StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0)
            {
                text.Append(", ");
            }

            text.Append(shape[i].ToString(CultureInfo.InvariantCulture));
        }

        return text.Append(']').ToString();
    }

    /// <summary>
    /// Appends the optional arguments of a conv's repr in PyTorch's <c>_ConvNd.extra_repr</c> order —
    /// padding, dilation, output_padding, groups, bias=False — each only when not the default.
    /// </summary>
    public static StringBuilder AppendConvOptions(
        StringBuilder text, int padHeight, int padWidth, int dilationHeight, int dilationWidth,
        int outputPadHeight, int outputPadWidth, int groups, bool hasBias)
    {
        if (padHeight != 0 || padWidth != 0)
        {
            text.Append(", padding=").Append(Pair(padHeight, padWidth));
        }

        if (dilationHeight != 1 || dilationWidth != 1)
        {
            text.Append(", dilation=").Append(Pair(dilationHeight, dilationWidth));
        }

        if (outputPadHeight != 0 || outputPadWidth != 0)
        {
            text.Append(", output_padding=").Append(Pair(outputPadHeight, outputPadWidth));
        }

        if (groups != 1)
        {
            text.Append(", groups=").Append(groups);
        }

        if (!hasBias)
        {
            text.Append(", bias=False");
        }

        return text;
    }

    /// <summary>A Python tuple of two ints: <c>(1, 1)</c>.</summary>
    public static string Pair(int first, int second) =>
        string.Create(CultureInfo.InvariantCulture, $"({first}, {second})");

    /// <summary>
    /// Python's <c>repr(float)</c> of a float32 widened to double, as PyTorch prints a quantized module's
    /// scale (it stores scales as double): shortest round-trip digits, fixed notation for decimal
    /// exponents -4..15, else <c>1e-05</c> style; integral values keep ".0".
    /// </summary>
    public static string PythonFloat(double value)
    {
        if (double.IsNaN(value))
        {
            return "nan";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "inf" : "-inf";
        }

        string sign = value < 0 || (value == 0 && double.IsNegative(value)) ? "-" : string.Empty;
        if (value == 0)
        {
            return sign + "0.0";
        }

        // .NET's "R" gives the same shortest round-trip digits as Python; only the layout differs.
        string roundTrip = Math.Abs(value).ToString("R", CultureInfo.InvariantCulture);
        int exponentMark = roundTrip.IndexOfAny(['E', 'e']);
        string mantissa = exponentMark < 0 ? roundTrip : roundTrip[..exponentMark];
        int exponent = exponentMark < 0 ? 0 : int.Parse(roundTrip[(exponentMark + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        int point = mantissa.IndexOf('.');
        string digits = point < 0 ? mantissa : mantissa.Remove(point, 1);
        int pointPosition = point < 0 ? mantissa.Length : point;
        int leadingZeros = 0;
        while (leadingZeros < digits.Length - 1 && digits[leadingZeros] == '0')
        {
            leadingZeros++;
        }

        digits = digits[leadingZeros..].TrimEnd('0');
        if (digits.Length == 0)
        {
            digits = "0";
        }

        // Decimal exponent of the first significant digit.
        int decimalExponent = pointPosition - leadingZeros - 1 + exponent;
        if (decimalExponent is >= -4 and < 16)
        {
            if (decimalExponent < 0)
            {
                return sign + "0." + new string('0', -decimalExponent - 1) + digits;
            }

            string integerPart = digits.Length > decimalExponent + 1 ? digits[..(decimalExponent + 1)] : digits.PadRight(decimalExponent + 1, '0');
            string fraction = digits.Length > decimalExponent + 1 ? digits[(decimalExponent + 1)..] : "0";
            return sign + integerPart + "." + fraction;
        }

        string scientificMantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
        string exponentText = Math.Abs(decimalExponent).ToString("00", CultureInfo.InvariantCulture);
        return sign + scientificMantissa + "e" + (decimalExponent < 0 ? "-" : "+") + exponentText;
    }

    /// <summary>
    /// A one-element float tensor as PyTorch prints it in <c>Quantize(scale=tensor([0.0011]), ...)</c>:
    /// four decimals, or scientific notation (<c>tensor([1.0000e-05])</c>) for magnitudes below 1e-4 or
    /// from 1e8 on.
    /// </summary>
    public static string ScalarTensor(float value)
    {
        double magnitude = Math.Abs((double)value);
        string number = magnitude != 0 && (magnitude < 1e-4 || magnitude >= 1e8)
            ? ((double)value).ToString("0.0000e+00", CultureInfo.InvariantCulture)
            : ((double)value).ToString("0.0000", CultureInfo.InvariantCulture);
        return "tensor([" + number + "])";
    }

    /// <summary>A zero point tensor: <c>tensor([0])</c>.</summary>
    public static string IntTensor(int value) =>
        "tensor([" + value.ToString(CultureInfo.InvariantCulture) + "])";
}
