namespace QuantGen.Observers
{
    /// <summary>Which observer algorithm a QuantGen.Runtime <c>ObserverSpec</c> creates.</summary>
    public enum ObserverKind
    {
        /// <summary>Running min/max over every batch (<c>MinMaxObserver</c>).</summary>
        MinMax,

        /// <summary>Exponential moving average of each batch's min/max (<c>MovingAverageMinMaxObserver</c>).</summary>
        MovingAverageMinMax,

        /// <summary>Running min/max per channel (<c>PerChannelMinMaxObserver</c>).</summary>
        PerChannelMinMax,

        /// <summary>2048-bin histogram with an L2-error search for the clipping range (<c>HistogramObserver</c>).</summary>
        Histogram,

        /// <summary>Clips at a percentile of |x|, or of each tail for mixed-sign affine data (<c>PercentileObserver</c>; QuantGen's, not PyTorch's).</summary>
        Percentile,

        /// <summary>TensorRT's entropy calibration: the threshold minimising the KL divergence of the quantized histogram (<c>EntropyObserver</c>).</summary>
        Entropy,

        /// <summary>The clipping range minimising the expected quantization MSE on the histogram (<c>MseObserver</c>).</summary>
        Mse,

        /// <summary>Exponential moving average of each channel's min/max (<c>MovingAveragePerChannelMinMaxObserver</c>; quantization-aware training's weight observer).</summary>
        MovingAveragePerChannelMinMax,
    }
}
