namespace QuantGen.Tests.Binding;

/// <summary>
/// Tests that build TorchSharp models from torch.manual_seed: module initialisers draw from libtorch's one global
/// generator, so these run while no other test does, and each sees exactly the weights its seed gives.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SeededTorchCollection
{
    public const string Name = "Seeded TorchSharp models";
}
