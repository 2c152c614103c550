using System;
using System.Collections.Generic;
using QuantGen.Observers;

namespace QuantGen.Tests.Observers;

/// <summary>
/// Qparams from elsewhere on a single observer (SetRange/SetQParams, FixedQParams specs) and observers of one's own
/// (IObserver through ObserverSpec.Custom). Expected qparams are worked out by hand from ranges chosen so every step
/// of PyTorch's formula is exact in float32 (widths that are 255/16, 127/16, 127.5/2^k).
/// </summary>
public class FixedAndCustomObserverTests
{
    /// <summary>Every per-tensor observer kind, quint8 affine without reduce_range (quant range 0..255).</summary>
    public static TheoryData<string> PerTensorKinds => ["MinMax", "MovingAverageMinMax", "Histogram", "Percentile", "Entropy", "Mse"];

    private static ObserverSpec PerTensorSpec(string kind, bool reduceRange = false) => kind switch
    {
        "MinMax" => ObserverSpec.MinMax(reduceRange: reduceRange),
        "MovingAverageMinMax" => ObserverSpec.MovingAverageMinMax(reduceRange: reduceRange),
        "Histogram" => ObserverSpec.Histogram(reduceRange: reduceRange),
        "Percentile" => ObserverSpec.Percentile(reduceRange: reduceRange),
        "Entropy" => ObserverSpec.Entropy(reduceRange: reduceRange),
        _ => ObserverSpec.Mse(reduceRange: reduceRange),
    };

    /// <summary>A calibration batch whose range [-100, 100] is far from every fixed value below.</summary>
    private static void ObserveWideBatch(Observer observer) =>
        observer.Observe([-100f, -3f, 0f, 7f, 100f, 1f], [2, 3]);

    [Theory]
    [MemberData(nameof(PerTensorKinds))]
    public void SetQParams_fixes_scale_and_zero_point_and_calibration_changes_nothing(string kind)
    {
        Observer observer = PerTensorSpec(kind).Create("M.conv1");
        ObserveWideBatch(observer);
        observer.SetQParams(0.05f, 7);
        ObserveWideBatch(observer);

        QParams qparams = observer.CalculateQParams();
        Assert.True(observer.IsFixed);
        Assert.Equal(0.05f, qparams.Scale);
        Assert.Equal(7, qparams.ZeroPoint);
        Assert.Equal(QuantDType.QUInt8, qparams.DType);
        Assert.Equal(1, observer.BatchCount);   // the batch after fixing was not recorded
    }

    [Theory]
    [MemberData(nameof(PerTensorKinds))]
    public void SetRange_gives_the_qparams_of_that_range_with_the_observers_dtype_and_quant_range(string kind)
    {
        // [-4, 11.9375] over 0..255: scale = 15.9375 / 255 = 1/16, zero point = 0 - round(-4 / (1/16)) = 64.
        Observer full = PerTensorSpec(kind).Create("M.conv1");
        full.SetRange(-4f, 11.9375f);
        ObserveWideBatch(full);
        Assert.Equal(0.0625f, full.CalculateQParams().Scale);
        Assert.Equal(64, full.CalculateQParams().ZeroPoint);

        // reduce_range halves the quant range to 0..127: [-2, 5.9375] gives 7.9375 / 127 = 1/16 and 0 - round(-32) = 32.
        Observer reduced = PerTensorSpec(kind, reduceRange: true).Create("M.conv1");
        reduced.SetRange(-2f, 5.9375f);
        Assert.Equal(0.0625f, reduced.CalculateQParams().Scale);
        Assert.Equal(32, reduced.CalculateQParams().ZeroPoint);
    }

    [Fact]
    public void SetRange_on_a_symmetric_qint8_observer_divides_the_magnitude_by_127_5()
    {
        // |x| max 1.9921875 = 255/128; / 127.5 = 1/64; symmetric qint8 has zero point 0.
        Observer observer = ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric).Create("M.fc.weight");
        observer.SetRange(-1.5f, 1.9921875f);
        QParams qparams = observer.CalculateQParams();
        Assert.Equal(0.015625f, qparams.Scale);
        Assert.Equal(0, qparams.ZeroPoint);
        Assert.Equal(QuantDType.QInt8, qparams.DType);
    }

    [Fact]
    public void A_fixed_observer_needs_no_calibration()
    {
        Observer observer = ObserverSpec.Histogram().Create("M.quant");
        observer.SetQParams(0.02f, 128);
        Assert.False(observer.HasObserved);
        Assert.Equal(0.02f, observer.CalculateQParams().Scale);
    }

    [Fact]
    public void Per_channel_SetQParams_and_SetRange_fix_one_value_per_channel_along_the_specs_axis()
    {
        Observer observer = ObserverSpec.PerChannelMinMax().Create("M.conv1.weight");
        observer.SetQParams([0.01f, 0.02f, 0.04f], [0, 0, 0]);
        observer.Observe(new float[3 * 2], [3, 2]);
        QParams qparams = observer.CalculateQParams();
        Assert.True(qparams.IsPerChannel);
        Assert.Equal(0, qparams.Axis);
        Assert.Equal(new[] { 0.01f, 0.02f, 0.04f }, qparams.Scales);
        Assert.Equal(new[] { 0, 0, 0 }, qparams.ZeroPoints);

        // |x| max per channel 0.99609375 = 127.5/128 and 3.984375 = 127.5/32: scales 1/128 and 1/32.
        Observer ranged = ObserverSpec.PerChannelMinMax(channelAxis: 1).Create("M.up.weight");
        ranged.SetRange([-0.99609375f, -3.984375f], [0.5f, 1f]);
        QParams fromRange = ranged.CalculateQParams();
        Assert.Equal(1, fromRange.Axis);
        Assert.Equal(new[] { 0.0078125f, 0.03125f }, fromRange.Scales);
        Assert.Equal(new[] { 0, 0 }, fromRange.ZeroPoints);
    }

    [Fact]
    public void Fixed_per_channel_qparams_refuse_a_tensor_with_another_channel_count()
    {
        Observer observer = ObserverSpec.PerChannelMinMax().Create("M.conv1.weight");
        observer.SetQParams([0.01f, 0.02f, 0.04f], [0, 0, 0]);
        var error = Assert.Throws<ArgumentException>(() => observer.Observe(new float[8 * 2], [8, 2]));
        Assert.Contains("M.conv1.weight", error.Message);
        Assert.Contains("3 channels along axis 0", error.Message);
        Assert.Contains("8 channels", error.Message);
    }

    public static TheoryData<float> BadScales => [0f, -0.5f, float.NaN, float.PositiveInfinity];

    [Theory]
    [MemberData(nameof(BadScales))]
    public void A_scale_that_is_not_positive_and_finite_is_refused_naming_the_layer(float scale)
    {
        Observer observer = ObserverSpec.Histogram().Create("M.conv2");
        var error = Assert.Throws<ArgumentException>(() => observer.SetQParams(scale, 0));
        Assert.Contains("M.conv2", error.Message);
        Assert.Contains("positive and finite", error.Message);
        Assert.False(observer.IsFixed);

        Observer perChannel = ObserverSpec.PerChannelMinMax().Create("M.conv2.weight");
        var perChannelError = Assert.Throws<ArgumentException>(() => perChannel.SetQParams([0.1f, scale], [0, 0]));
        Assert.Contains("M.conv2.weight", perChannelError.Message);
        Assert.Contains("channel 1", perChannelError.Message);
    }

    [Theory]
    [InlineData(QuantDType.QUInt8, 256, "0..255")]
    [InlineData(QuantDType.QUInt8, -1, "0..255")]
    [InlineData(QuantDType.QInt8, 128, "-128..127")]
    [InlineData(QuantDType.QInt8, -129, "-128..127")]
    public void A_zero_point_outside_the_observers_dtype_is_refused_naming_the_layer_and_the_range(QuantDType dtype, int zeroPoint, string range)
    {
        QScheme scheme = dtype == QuantDType.QInt8 ? QScheme.PerTensorSymmetric : QScheme.PerTensorAffine;
        Observer observer = ObserverSpec.MinMax(dtype, scheme).Create("M.conv1");
        var error = Assert.Throws<ArgumentException>(() => observer.SetQParams(0.1f, zeroPoint));
        Assert.Contains("M.conv1", error.Message);
        Assert.Contains($"{dtype.ToTorchString()}'s range {range}", error.Message);
    }

    [Fact]
    public void A_bad_range_is_refused_naming_the_layer()
    {
        Observer observer = ObserverSpec.MinMax().Create("M.conv1");
        Assert.Contains("M.conv1", Assert.Throws<ArgumentException>(() => observer.SetRange(2f, 1f)).Message);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => observer.SetRange(float.NaN, 1f)).Message);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => observer.SetRange(0f, float.PositiveInfinity)).Message);
    }

    [Fact]
    public void Per_tensor_and_per_channel_forms_are_refused_on_the_other_kind_of_observer()
    {
        Observer perTensor = ObserverSpec.Histogram().Create("M.conv1");
        var error = Assert.Throws<ArgumentException>(() => perTensor.SetQParams([0.1f, 0.2f], [0, 0]));
        Assert.Contains("M.conv1", error.Message);
        Assert.Contains("one value for the whole tensor", error.Message);

        Observer perChannel = ObserverSpec.PerChannelMinMax().Create("M.conv1.weight");
        error = Assert.Throws<ArgumentException>(() => perChannel.SetRange(-1f, 1f));
        Assert.Contains("one value per channel", error.Message);

        error = Assert.Throws<ArgumentException>(() => perChannel.SetQParams([0.1f, 0.2f], [0]));
        Assert.Contains("2 scales and 1 zero points", error.Message);
    }

    [Fact]
    public void Bad_calibration_data_is_still_refused_when_the_qparams_are_fixed()
    {
        Observer observer = ObserverSpec.MinMax().Create("M.conv1");
        observer.SetQParams(0.1f, 3);
        var error = Assert.Throws<ArgumentException>(() => observer.Observe([1f, float.NaN], [2]));
        Assert.Contains("M.conv1", error.Message);
    }

    [Fact]
    public void FixedQParams_specs_are_pytorchs_FixedQParamsObserver_and_compare_by_value()
    {
        ObserverSpec spec = ObserverSpec.FixedQParams(1f / 256f, 0);
        Observer observer = spec.Create("M.sigmoid");
        Assert.IsType<FixedQParamsObserver>(observer);
        Assert.Equal(1f / 256f, observer.CalculateQParams().Scale);
        Assert.Equal("FixedQParamsObserver(scale=0.00390625, zero_point=0, dtype=torch.quint8, qscheme=torch.per_tensor_affine)", spec.ToString());

        // A QConfig holding one stays a value: equal values, equal specs (fused-member checks compare qconfigs).
        Assert.Equal(ObserverSpec.FixedQParams(1f / 256f, 0), spec);
        Assert.NotEqual(ObserverSpec.FixedQParams(1f / 256f, 1), spec);
        Assert.Equal(ObserverSpec.FixedQParams([0.1f, 0.2f], [0, 0]), ObserverSpec.FixedQParams([0.1f, 0.2f], [0, 0]));
    }

    [Fact]
    public void WithQParams_and_WithRange_keep_the_specs_dtype_and_quant_range()
    {
        // X86's activation spec: quint8 with reduce_range, so [-2, 5.9375] → 1/16 and 32 as above.
        ObserverSpec ranged = QConfig.X86.Activation.WithRange(-2f, 5.9375f);
        QParams qparams = ranged.Create("M.conv1").CalculateQParams();
        Assert.Equal(0.0625f, qparams.Scale);
        Assert.Equal(32, qparams.ZeroPoint);

        // X86's per-channel weight spec given one scale becomes per tensor, still symmetric qint8.
        ObserverSpec weight = QConfig.X86.Weight.WithQParams(0.01f, 0);
        Assert.Equal(QScheme.PerTensorSymmetric, weight.Scheme);
        Assert.Equal(QuantDType.QInt8, weight.DType);

        var error = Assert.Throws<ArgumentException>(() => QConfig.X86.Activation.WithQParams(0.1f, 300));
        Assert.Contains("torch.quint8's range 0..255", error.Message);
        error = Assert.Throws<ArgumentException>(() => ObserverSpec.FixedQParams([0.1f], [0], channelAxis: 0, scheme: QScheme.PerTensorSymmetric));
        Assert.Contains("per channel", error.Message);
    }

    /// <summary>
    /// TensorRT's max calibration, which PyTorch has no observer for: symmetric qint8 with scale = max|x| / 127 (PyTorch
    /// divides by 127.5). It records the layers it was made for, so the test can see the factory's argument.
    /// </summary>
    private sealed class AbsMaxObserver(string layer, List<string> made) : IObserver
    {
        private float _absMax;

        public int Batches { get; private set; }

        public string Layer { get; } = Record(layer, made);

        public void Observe(ReadOnlySpan<float> values, ReadOnlySpan<int> shape)
        {
            foreach (float value in values)
            {
                _absMax = MathF.Max(_absMax, MathF.Abs(value));
            }

            Batches++;
        }

        public QParams CalculateQParams() => QParams.PerTensor(_absMax / 127f, 0, QuantDType.QInt8);

        private static string Record(string layer, List<string> made)
        {
            made.Add(layer);
            return layer;
        }
    }

    [Fact]
    public void A_custom_observer_gives_the_qparams_it_computes()
    {
        var made = new List<string>();
        ObserverSpec spec = ObserverSpec.Custom(layer => new AbsMaxObserver(layer, made), "AbsMaxObserver", QuantDType.QInt8, QScheme.PerTensorSymmetric);
        Observer observer = spec.Create("M.conv1");
        observer.Observe([1f, -2.54f, 0.5f, 2f], [2, 2]);
        observer.Observe([0.25f, -1f], [2]);

        Assert.Equal(2.54f / 127f, observer.CalculateQParams().Scale);
        Assert.Equal(0, observer.CalculateQParams().ZeroPoint);
        var inner = Assert.IsType<AbsMaxObserver>(Assert.IsType<CustomObserver>(observer).Inner);
        Assert.Equal(2, inner.Batches);
        Assert.Equal(new[] { "M.conv1" }, made);
        Assert.Equal("AbsMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, reduce_range=False)", spec.ToString());
    }

    [Fact]
    public void A_custom_observer_never_sees_bad_data_and_its_results_are_checked_against_the_spec()
    {
        var made = new List<string>();
        Observer observer = ObserverSpec.Custom(layer => new AbsMaxObserver(layer, made), "AbsMaxObserver", QuantDType.QInt8, QScheme.PerTensorSymmetric).Create("M.conv1");
        Assert.Throws<ArgumentException>(() => observer.Observe([1f, float.PositiveInfinity], [2]));
        Assert.Equal(0, ((AbsMaxObserver)((CustomObserver)observer).Inner).Batches);

        // It returns qint8 qparams but the spec says quint8: refused before a layer could use them.
        Observer mismatched = ObserverSpec.Custom(layer => new AbsMaxObserver(layer, made), "AbsMaxObserver").Create("M.conv2");
        mismatched.Observe([1f, -2f], [2]);
        var error = Assert.Throws<InvalidOperationException>(() => mismatched.CalculateQParams());
        Assert.Contains("M.conv2", error.Message);
        Assert.Contains("AbsMaxObserver", error.Message);
        Assert.Contains("torch.quint8", error.Message);

        // An all-zero batch makes its scale 0, which no layer can use.
        Observer zero = ObserverSpec.Custom(layer => new AbsMaxObserver(layer, made), "AbsMaxObserver", QuantDType.QInt8, QScheme.PerTensorSymmetric).Create("M.conv3");
        zero.Observe([0f, 0f], [2]);
        error = Assert.Throws<InvalidOperationException>(() => zero.CalculateQParams());
        Assert.Contains("M.conv3", error.Message);
        Assert.Contains("positive and finite", error.Message);

        // Fixed qparams win over a custom observer too.
        zero.SetQParams(0.5f, 0);
        Assert.Equal(0.5f, zero.CalculateQParams().Scale);

        Assert.Contains("returned null", Assert.Throws<ArgumentException>(() => ObserverSpec.Custom(_ => null!, "Broken").Create("M.conv4")).Message);
    }
}
