namespace QuantGen
{
    /// <summary>
    /// Which engine's integer arithmetic the quantized model reproduces, and which default
    /// <c>QConfig</c> <c>Prepare()</c> uses when none is passed (PyTorch's
    /// <c>torch.backends.quantized.engine</c> plus <c>get_default_qconfig(engine)</c>).
    /// </summary>
    public enum QuantBackend
    {
        /// <summary>
        /// PyTorch's 'x86' / 'fbgemm' preset: activations 7-bit (reduce_range) quint8 from a histogram,
        /// weights per-channel symmetric qint8; the bias stays float (onednn arithmetic).
        /// </summary>
        X86 = 0,

        /// <summary>
        /// PyTorch's 'qnnpack' preset: activations quint8 from a histogram, weights per-tensor symmetric
        /// qint8; the bias is quantized to int32 with scale <c>sx * sw</c>.
        /// </summary>
        Qnnpack = 1,
    }
}
