using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace QuantGen.Generator.Parsing;

/// <summary>
/// What both forward readers (<see cref="ForwardParser"/> for the generated form, <see cref="CaptureParser"/> for
/// the bound form) read off syntax and operations the same way: constant arguments, source positions, one-line text.
/// </summary>
internal static class SourceValues
{
    /// <summary>The operation under implicit conversions and parentheses.</summary>
    public static IOperation? Unwrap(IOperation? operation)
    {
        while (operation is IConversionOperation or IParenthesizedOperation)
        {
            operation = operation is IConversionOperation conversion ? conversion.Operand : ((IParenthesizedOperation)operation).Operand;
        }

        return operation;
    }

    /// <summary>An integer constant (a negated one too), or null.</summary>
    public static int? Constant(IOperation? operation)
    {
        operation = Unwrap(operation);
        if (operation is IUnaryOperation { OperatorKind: UnaryOperatorKind.Minus } negation && Constant(negation.Operand) is int negated)
        {
            return -negated;
        }

        return operation?.ConstantValue is { HasValue: true, Value: { } value } && value is int or long or short or sbyte or byte
            ? (int?)System.Convert.ToInt32(value, CultureInfo.InvariantCulture)
            : null;
    }

    /// <summary>The elements of an array creation or a collection expression, or null.</summary>
    public static List<IOperation>? Elements(IOperation? operation) => operation switch
    {
        IArrayCreationOperation { Initializer: { } initializer } => initializer.ElementValues.ToList(),
        ICollectionExpressionOperation collection => collection.Elements.ToList(),
        _ => null,
    };

    /// <summary>The integer constants of a params array or collection (or a single constant), or null.</summary>
    public static List<int>? Constants(IOperation? operation)
    {
        operation = Unwrap(operation);
        List<IOperation>? elements = Elements(operation);
        if (elements is null)
        {
            return Constant(operation) is int single ? new List<int> { single } : null;
        }

        var values = new List<int>();
        foreach (IOperation element in elements)
        {
            if (Constant(element) is not int value)
            {
                return null;
            }

            values.Add(value);
        }

        return values;
    }

    /// <summary>The 1-based line a node starts on.</summary>
    public static int LineOf(SyntaxNode node) =>
        node.SyntaxTree.GetLineSpan(node.Span).StartLinePosition.Line + 1;

    /// <summary>The node's text on one line, whitespace runs collapsed, without a trailing ';'.</summary>
    public static string OneLine(SyntaxNode node)
    {
        string text = node.ToString();
        var line = new StringBuilder(text.Length);
        bool space = false;
        foreach (char c in text)
        {
            if (char.IsWhiteSpace(c))
            {
                space = line.Length > 0;
                continue;
            }

            if (space)
            {
                line.Append(' ');
                space = false;
            }

            line.Append(c);
        }

        return line.ToString().TrimEnd(';').TrimEnd();
    }

    /// <summary>A path's file name, without its directory.</summary>
    public static string FileName(string path)
    {
        int slash = path.LastIndexOfAny(new[] { '/', '\\' });
        return slash < 0 ? path : path.Substring(slash + 1);
    }

    /// <summary>Text cut to <paramref name="length"/> characters with "..." where it was longer.</summary>
    public static string Shorten(string text, int length) => text.Length <= length ? text : text.Substring(0, length - 3) + "...";
}
