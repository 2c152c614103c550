using Microsoft.CodeAnalysis;

namespace QuantGen.Generator;

/// <summary>TODO(helper C): the incremental generator's wiring.</summary>
[Generator(LanguageNames.CSharp)]
public sealed class QuantizeGenerator : IIncrementalGenerator
{
    /// <inheritdoc/>
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
    }
}
