namespace QuantGen.Modules;

/// <summary>A Conv2d's hyper-parameters, as read from the TorchSharp module (shapes excluded).</summary>
public readonly record struct Conv2dOptions(
    int InChannels, int OutChannels, int KernelHeight, int KernelWidth,
    int StrideHeight = 1, int StrideWidth = 1,
    int PadHeight = 0, int PadWidth = 0,
    int DilationHeight = 1, int DilationWidth = 1,
    int Groups = 1);
