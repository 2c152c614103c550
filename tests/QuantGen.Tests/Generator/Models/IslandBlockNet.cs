using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Generator.Models;

/// <summary>A [Quantize] block (conv → relu) that a parent may inline, or keep in float with [NoQuantize].</summary>
[Quantize]
public sealed partial class IslandBlock : Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Conv2d conv = Conv2d(3, 3, 3, padding: 1);
    private readonly TorchSharp.Modules.ReLU relu = ReLU();

    /// <summary>Creates the block.</summary>
    public IslandBlock()
        : base(nameof(IslandBlock)) => RegisterComponents();

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => relu.forward(conv.forward(input));
}

/// <summary>
/// conv → [NoQuantize] block (a whole [Quantize] sub-module) → conv: the block is not inlined but runs in float
/// as one island, PyTorch's qconfig None on a sub-module.
/// </summary>
[Quantize]
public sealed partial class IslandBlockNet : Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Conv2d stem = Conv2d(2, 3, 1);
    [NoQuantize]
    private readonly IslandBlock block = new();
    private readonly TorchSharp.Modules.Conv2d head = Conv2d(3, 2, 1);

    /// <summary>Creates the model.</summary>
    public IslandBlockNet()
        : base(nameof(IslandBlockNet)) => RegisterComponents();

    /// <summary>The float block, for tests that recompute it.</summary>
    public IslandBlock Block() => block;

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => head.forward(block.forward(stem.forward(input)));
}
