namespace QuantGen;

/// <summary>Range facts about <see cref="QuantDType"/> and <see cref="QScheme"/>.</summary>
public static class QuantDTypeInfo
{
    /// <summary>Smallest value of the full dtype range (every quantize clamps to the full range).</summary>
    public static int Min(this QuantDType dtype) => dtype == QuantDType.QUInt8 ? 0 : -128;

    /// <summary>Largest value of the full dtype range.</summary>
    public static int Max(this QuantDType dtype) => dtype == QuantDType.QUInt8 ? 255 : 127;

    /// <summary>True for the two symmetric schemes.</summary>
    public static bool IsSymmetric(this QScheme scheme) =>
        scheme is QScheme.PerTensorSymmetric or QScheme.PerChannelSymmetric;

    /// <summary>True for the two per-channel schemes.</summary>
    public static bool IsPerChannel(this QScheme scheme) =>
        scheme is QScheme.PerChannelAffine or QScheme.PerChannelSymmetric;

    /// <summary>PyTorch's spelling, for printing.</summary>
    public static string ToTorchString(this QuantDType dtype) => dtype == QuantDType.QUInt8 ? "torch.quint8" : "torch.qint8";

    /// <summary>PyTorch's spelling, for printing.</summary>
    public static string ToTorchString(this QScheme scheme) => scheme switch
    {
        QScheme.PerTensorAffine => "torch.per_tensor_affine",
        QScheme.PerTensorSymmetric => "torch.per_tensor_symmetric",
        QScheme.PerChannelAffine => "torch.per_channel_affine",
        _ => "torch.per_channel_symmetric",
    };
}
