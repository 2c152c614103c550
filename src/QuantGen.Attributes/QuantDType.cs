namespace QuantGen
{
    /// <summary>Quantized element type (PyTorch's <c>torch.quint8</c> / <c>torch.qint8</c>).</summary>
    public enum QuantDType
    {
        /// <summary>Unsigned 8-bit, 0..255 (activations).</summary>
        QUInt8,

        /// <summary>Signed 8-bit, -128..127 (weights).</summary>
        QInt8,
    }

    /// <summary>Quantization scheme (PyTorch's <c>torch.per_tensor_affine</c> and friends).</summary>
    public enum QScheme
    {
        /// <summary>One scale and zero point per tensor (<c>torch.per_tensor_affine</c>).</summary>
        PerTensorAffine,

        /// <summary>One scale per tensor, zero point fixed (<c>torch.per_tensor_symmetric</c>).</summary>
        PerTensorSymmetric,

        /// <summary>One scale and zero point per channel (<c>torch.per_channel_affine</c>).</summary>
        PerChannelAffine,

        /// <summary>One scale per channel, zero points fixed (<c>torch.per_channel_symmetric</c>).</summary>
        PerChannelSymmetric,
    }
}
