namespace QuantGen.Qat;

/// <summary>Where a fake quantize takes its scale and zero point from while training.</summary>
public enum FakeQuantKind
{
    /// <summary>
    /// PyTorch's <c>FusedMovingAvgObsFakeQuantize</c> (every <c>get_default_qat_qconfig</c>): a moving-average observer,
    /// qparams by ATen's C++ formula (<see cref="TrainingQParams"/>) after each observed batch.
    /// </summary>
    FusedMovingAverage,

    /// <summary>PyTorch's <c>FakeQuantize</c>: the observer's own <c>calculate_qparams</c> after each observed batch.</summary>
    ObserverQParams,

    /// <summary>
    /// PyTorch's <c>_LearnableFakeQuantize</c> (LSQ): scale and zero point are parameters the optimizer trains, with
    /// PyTorch's gradient formulas; the observer only gives their starting values.
    /// </summary>
    Learnable,

    /// <summary>
    /// Symmetric int8 with scale = max|x| / 127 of the tensor being quantized, each step, zero point 0, range
    /// [−127, 127]: the scheme of the classic hand-written QAT layer. Its observer (a moving average of the same
    /// symmetric range) gives the qparams for conversion.
    /// </summary>
    AbsMaxSymmetric,
}
