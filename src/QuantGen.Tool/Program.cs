using System;

namespace QuantGen.Tool;

/// <summary>The <c>quantgen</c> command's entry point.</summary>
internal static class Program
{
    private static int Main(string[] args) => QuantGenTool.Run(args, Console.Out, Console.Error);
}
