using QuantGen.Modules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Generator.Models;

/// <summary>A block whose forward branches on a readonly bool set at construction (decided once at Prepare).</summary>
[Quantize]
public sealed partial class FlagBlock : Module<Tensor, Tensor>
{
    private readonly bool withPool;
    private readonly TorchSharp.Modules.Conv2d conv = Conv2d(3, 3, 3, padding: 1);
    private readonly TorchSharp.Modules.MaxPool2d pool = MaxPool2d(2);

    /// <summary>Creates the block; <paramref name="withPool"/> adds a max pool after the conv.</summary>
    public FlagBlock(bool withPool)
        : base(nameof(FlagBlock))
    {
        this.withPool = withPool;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        Tensor x = conv.forward(input);
        if (withPool)
        {
            x = pool.forward(x);
        }

        return x;
    }
}

/// <summary>Two FlagBlocks inlined into one graph, one with its pool and one without.</summary>
[Quantize]
public sealed partial class FlagBlockNet : Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Conv2d stem = Conv2d(2, 3, 1);
    private readonly FlagBlock first = new(withPool: true);
    private readonly FlagBlock second = new(withPool: false);

    /// <summary>Creates the model.</summary>
    public FlagBlockNet()
        : base(nameof(FlagBlockNet)) => RegisterComponents();

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => second.forward(first.forward(stem.forward(input)));
}
