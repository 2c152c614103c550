using System;
using TorchSharp.Modules;

namespace QuantGen.Modules;

/// <summary>
/// The eval-mode numbers of a BatchNorm module (running mean and variance, gamma, beta, eps) read once as
/// float32 arrays, shared by every fold (conv, conv-transpose, linear) and the standalone BatchNorm2d.
/// </summary>
/// <remarks>
/// The running statistics are used whatever the module's training flag (eval semantics, as PyTorch's
/// <c>fuse_conv_bn_eval</c> requires). <c>affine=False</c> means gamma 1 and beta 0 (PyTorch's fold
/// substitutes <c>ones_like</c>/<c>zeros_like</c>). eps is the module's own, narrowed to float32 as
/// libtorch does when it adds the Python scalar to a float32 tensor.
/// </remarks>
internal sealed class BatchNormStatistics
{
    private readonly float[]? _gamma;
    private readonly float[]? _beta;

    private BatchNormStatistics(float[] mean, float[] variance, float[]? gamma, float[]? beta, float eps)
    {
        Mean = mean;
        Variance = variance;
        _gamma = gamma;
        _beta = beta;
        Eps = eps;
    }

    /// <summary>running_mean.</summary>
    public float[] Mean { get; }

    /// <summary>running_var.</summary>
    public float[] Variance { get; }

    /// <summary>The module's eps as float32.</summary>
    public float Eps { get; }

    /// <summary>Number of features.</summary>
    public int Channels => Mean.Length;

    /// <summary>gamma (null without affine parameters).</summary>
    public float[]? GammaValues => _gamma;

    /// <summary>beta (null without affine parameters).</summary>
    public float[]? BetaValues => _beta;

    /// <summary>True when the module is affine (has gamma and beta).</summary>
    public bool Affine => _gamma is not null;

    /// <summary>gamma of channel <paramref name="c"/> (1 without affine parameters).</summary>
    public float Gamma(int c) => _gamma is null ? 1f : _gamma[c];

    /// <summary>beta of channel <paramref name="c"/> (0 without affine parameters).</summary>
    public float Beta(int c) => _beta is null ? 0f : _beta[c];

    /// <summary><c>rsqrt(var + eps) = 1f / MathF.Sqrt(var + eps)</c> in float32: exact, not an estimate.</summary>
    public float InverseSigma(int c) => 1.0f / MathF.Sqrt(Variance[c] + Eps);

    /// <summary>
    /// Reads the statistics of <paramref name="batchNorm"/>, which must have <paramref name="expectedChannels"/>
    /// features (or one, when <paramref name="allowSingleFeature"/>: PyTorch's linear-bn fold broadcasts it).
    /// </summary>
    /// <param name="name">"Model.layer", for messages.</param>
    /// <param name="batchNorm">The module.</param>
    /// <param name="kind">"BatchNorm2d" or "BatchNorm1d", for messages.</param>
    /// <param name="expectedChannels">The channel count it must have.</param>
    /// <param name="expectedWhat">What that count is, for messages ("the conv's out_channels").</param>
    /// <param name="usedAs">How the statistics are used, for messages ("folded into the conv").</param>
    /// <param name="allowSingleFeature">Accept a one-feature BatchNorm as well.</param>
    /// <exception cref="ArgumentException">Wrong channel count, or statistics of inconsistent lengths.</exception>
    /// <exception cref="NotSupportedException">No running statistics (track_running_stats=False), or non-float32 parameters.</exception>
    public static BatchNormStatistics Read(string name, NormBase batchNorm, string kind, int expectedChannels, string expectedWhat, string usedAs, bool allowSingleFeature = false)
    {
        long features = batchNorm.num_features;
        if (features != expectedChannels && !(allowSingleFeature && features == 1))
        {
            string alternatives = allowSingleFeature ? " or 1" : string.Empty;
            throw new ArgumentException($"{name}: the fused {kind} has {features} features, expected {expectedChannels}{alternatives} ({expectedWhat}).");
        }

        float[] mean = FusedConv2d.ReadParameter(name, $"{kind} running_mean", batchNorm.running_mean)
            ?? throw NoRunningStatistics(name, kind, usedAs);
        float[] variance = FusedConv2d.ReadParameter(name, $"{kind} running_var", batchNorm.running_var)
            ?? throw NoRunningStatistics(name, kind, usedAs);
        float[]? gamma = FusedConv2d.ReadParameter(name, $"{kind} weight", batchNorm.weight);
        float[]? beta = FusedConv2d.ReadParameter(name, $"{kind} bias", batchNorm.bias);
        int channels = checked((int)features);
        if (mean.Length != channels || variance.Length != channels || (gamma is not null && gamma.Length != channels) || (beta is not null && beta.Length != channels) || (gamma is null) != (beta is null))
        {
            throw new ArgumentException($"{name}: the fused {kind}'s statistics do not all have {channels} values.");
        }

        return new BatchNormStatistics(mean, variance, gamma, beta, (float)batchNorm.eps);
    }

    /// <summary>Throws naming the channel when a folded factor or bias is not finite (e.g. running_var + eps = 0).</summary>
    public void ThrowIfNotFinite(string name, string kind, int c, float factor, float bias)
    {
        if (!float.IsFinite(factor) || !float.IsFinite(bias))
        {
            throw new ArgumentException($"{name}: folding the {kind} gives a non-finite value for channel {c} (running_var={Variance[c]}, eps={Eps}, weight={Gamma(c)}, bias={Beta(c)}, running_mean={Mean[c]}).", "batchNorm");
        }
    }

    private static NotSupportedException NoRunningStatistics(string name, string kind, string usedAs) =>
        new($"{name}: the fused {kind} has no running statistics (track_running_stats=False), so it cannot be {usedAs}.");
}
