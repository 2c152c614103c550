using System;
using System.Linq;
using System.Threading.Tasks;
using QuantGen.Dynamic;
using QuantGen.Kernels;
using QuantGen.Tests.Binding;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Dynamic;

/// <summary>
/// PyTorch's float16 dynamic layers (float16_dynamic_qconfig) against TorchSharp's float ops run on the weights rounded
/// by libtorch itself (<c>weight.clamp(±65504).to(float16).to(float32)</c>, what <c>linear_prepack_fp16</c> keeps): the
/// rounding bit for bit, the arithmetic to float32 rounding (the layers sum in another order and compute σ and tanh
/// with other approximations than libtorch's).
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class Float16LayerTests
{
    /// <summary>
    /// A recurrent layer against TorchSharp's float LSTM/GRU on the same float16 weights. Per step the projections differ by
    /// the summation order (≲ K·2⁻²⁴ of Σ|w·x|) and the gates by the vector exp and tanh against libtorch's (≲ 2e-7); |h| &lt; 1
    /// and the forget gate &lt; 1 keep those from growing over the steps. Seen here: at most 2.4e-7 over these cases; 5e-6
    /// leaves room for libtorch's other CPU paths. A wrong gate order, a dropped bias or a weight rounded another way moves
    /// outputs by 1e-3 or more.
    /// </summary>
    private const float RecurrentTolerance = 5e-6f;

    private static Tensor Float16Rounded(Tensor weight) => weight.clamp(-65504, 65504).to(ScalarType.Float16).to(ScalarType.Float32);

    /// <summary>A copy of the module's parameters with every weight rounded by libtorch (biases unchanged).</summary>
    private static void RoundWeightsInPlace(Module module)
    {
        using var noGrad = torch.no_grad();
        foreach ((string name, Parameter parameter) in module.named_parameters())
        {
            if (name.StartsWith("weight", StringComparison.Ordinal))
            {
                parameter.copy_(Float16Rounded(parameter));
            }
        }
    }

    private static void AssertWithin(Tensor expected, Tensor actual, float tolerance, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        float difference = expected.sub(actual).abs().max().item<float>();
        Assert.True(difference <= tolerance, $"{what}: max |difference| {difference} > {tolerance}");
    }

    [Fact]
    public void Weights_round_to_nearest_even_saturate_at_65504_and_keep_subnormals_as_libtorch_does()
    {
        float tie = 1f + MathF.ScaleB(1f, -11); // halfway between 1 and 1 + 2⁻¹⁰: to even, 1
        float tieUp = 1f + (3 * MathF.ScaleB(1f, -11)); // halfway between 1 + 2⁻¹⁰ and 1 + 2⁻⁹: to even, 1 + 2⁻⁹
        var random = new Random(5);
        float[] values =
        [
            tie, -tie, tieUp, MathF.ScaleB(1f, -25), 3 * MathF.ScaleB(1f, -25), MathF.ScaleB(1f, -30), 1.1e-5f, -6.1e-5f,
            65504f, 65519f, 65520f, 1e6f, -1e6f, float.MaxValue, -0f, 0f, 0.1f, 1f / 3f,
            .. Enumerable.Range(0, 500).Select(i => (float)((random.NextDouble() - 0.5) * Math.Pow(10, (i % 12) - 6))),
        ];

        Half[] rounded = Float16Weights.Round("M.fc", "weight", values);
        float[] expected = Float16Rounded(torch.tensor(values)).data<float>().ToArray();
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), Float16Weights.Widen(rounded).Select(BitConverter.SingleToInt32Bits));
        Assert.Equal(65504f, (float)rounded[Array.IndexOf(values, 1e6f)]);

        var error = Assert.Throws<ArgumentException>(() => Float16Weights.Round("M.fc", "weight", [1f, float.NaN]));
        Assert.Contains("M.fc: weight[1] is NaN", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 1, 1, false)]
    [InlineData(3, 7, 33, true)]
    [InlineData(5, 64, 17, false)]
    [InlineData(17, 40, 130, true)]
    public void A_linear_is_torch_linear_on_the_float16_rounded_weight(int rows, int inFeatures, int outFeatures, bool relu)
    {
        torch.manual_seed(2100 + rows);
        using var scope = torch.NewDisposeScope();
        using var module = Linear(inFeatures, outFeatures);
        using (torch.no_grad())
        {
            // One weight outside float16's range: saturated to 65504, as linear_prepack_fp16 does.
            module.weight![0, 0].fill_(1e5f);
        }

        Float16Linear layer = Float16Linear.FromLinear("M", "fc", module, relu);
        Tensor rounded = Float16Rounded(module.weight!);
        Assert.Equal(rounded.data<float>().ToArray(), Float16Weights.Widen(layer.Weight));
        Assert.Equal(module.bias!.data<float>().ToArray(), layer.Bias);

        Tensor x = torch.randn(2, rows, inFeatures) * 2;
        Tensor expected = nn.functional.linear(x, rounded, module.bias);
        if (relu)
        {
            expected = nn.functional.relu(expected);
        }

        Tensor actual = layer.Forward(x);

        // Summation order only: |difference| ≤ (K + 2)·2⁻²³·Σ|x·w| (+ |b|), per output.
        Tensor magnitude = nn.functional.linear(x.abs(), rounded.abs(), module.bias!.abs());
        Tensor allowed = magnitude * ((inFeatures + 2) * 1.2e-7f) + 1e-30f;
        Assert.True(expected.sub(actual).abs().le(allowed).all().item<bool>(), $"max |difference| {expected.sub(actual).abs().max().item<float>()}");
        Assert.Equal(relu ? "DynamicQuantizedLinearReLU" : "DynamicQuantizedLinear", layer.ToString()[..layer.ToString().IndexOf('(')]);
        Assert.EndsWith("dtype=torch.float16)", layer.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_linear_gives_the_same_bits_at_every_width_and_lets_nan_through()
    {
        torch.manual_seed(2200);
        using var module = Linear(19, 37);
        Float16Linear reference = Float16Linear.FromLinear("M", "fc", module);
        float[] x = Enumerable.Range(0, 5 * 19).Select(i => MathF.Sin(i) * 3).ToArray();
        x[19] = float.NaN;
        float[] expected = new Float16Linear("M", "fc", 19, 37, reference.Weight, reference.Bias, false, vectorBits: 0).Forward(x, 5);
        foreach (int bits in new[] { 256, 512 }.Where(Float32GemmKernel.IsSupported))
        {
            float[] actual = new Float16Linear("M", "fc", 19, 37, reference.Weight, reference.Bias, false, bits).Forward(x, 5);
            Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
        }

        Assert.True(expected.Skip(37).Take(37).All(float.IsNaN), "row 1 has a NaN input: its outputs are NaN, as in float arithmetic");
        Assert.DoesNotContain(expected.Take(37), float.IsNaN);
    }

    [Fact]
    public void A_linear_refuses_weights_that_are_not_finite_and_sizes_that_do_not_fit_naming_the_layer()
    {
        Half[] weight = Enumerable.Repeat((Half)1, 6).ToArray();
        weight[4] = Half.PositiveInfinity;
        var infinite = Assert.Throws<ArgumentException>(() => new Float16Linear("Net", "fc", 3, 2, weight, null, false));
        Assert.Contains("Net.fc: weight [1, 1] is ∞", infinite.Message.Replace("Infinity", "∞", StringComparison.Ordinal), StringComparison.Ordinal);
        var shape = Assert.Throws<ArgumentException>(() => new Float16Linear("Net", "fc", 4, 2, new Half[6], null, false));
        Assert.Contains("Net.fc: expected a float16 weight [2, 4]", shape.Message, StringComparison.Ordinal);
        var bias = Assert.Throws<ArgumentException>(() => new Float16Linear("Net", "fc", 3, 2, new Half[6], [1f, float.NaN], false));
        Assert.Contains("Net.fc: bias[1]", bias.Message, StringComparison.Ordinal);
        var layer = new Float16Linear("Net", "fc", 3, 2, new Half[6], null, false);
        var input = Assert.Throws<ArgumentException>(() => layer.Forward(torch.zeros(4, 5)));
        Assert.Contains("Net.fc: expected input [N, 3]", input.Message, StringComparison.Ordinal);
    }

    public static TheoryData<bool, int, bool, bool, bool, bool> RecurrentCases()
    {
        // isLstm, layers, bidirectional, batchFirst, bias, initial states.
        var data = new TheoryData<bool, int, bool, bool, bool, bool>();
        foreach (bool isLstm in new[] { true, false })
        {
            data.Add(isLstm, 1, false, false, true, false);
            data.Add(isLstm, 1, false, true, false, true);
            data.Add(isLstm, 2, true, false, true, true);
            data.Add(isLstm, 3, true, true, true, false);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(RecurrentCases))]
    public void A_recurrent_layer_is_torchsharps_float_module_on_the_float16_rounded_weights(bool isLstm, int layers, bool bidirectional, bool batchFirst, bool bias, bool initialStates)
    {
        const int inputSize = 11, hiddenSize = 9, sequenceLength = 7, batch = 3;
        torch.manual_seed(2300 + layers);
        using var scope = torch.NewDisposeScope();
        Tensor input = torch.randn(batchFirst ? batch : sequenceLength, batchFirst ? sequenceLength : batch, inputSize) * 1.5f;
        int cells = layers * (bidirectional ? 2 : 1);
        Tensor h0 = torch.rand(cells, batch, hiddenSize) * 1.6f - 0.8f;
        Tensor c0 = torch.randn(cells, batch, hiddenSize);
        if (isLstm)
        {
            using var module = LSTM(inputSize, hiddenSize, layers, bias, batchFirst, bidirectional: bidirectional);
            Float16LSTM lstm = Float16LSTM.FromLSTM("M", "rnn", module);
            Assert.Equal(new RecurrentShape(inputSize, hiddenSize, layers, bidirectional, batchFirst), lstm.Shape);
            RoundWeightsInPlace(module);
            (Tensor expected, Tensor expectedH, Tensor expectedC) = initialStates ? module.forward(input, (h0, c0)) : module.forward(input);
            (Tensor output, Tensor hN, Tensor cN) = lstm.Forward(input, initialStates ? (h0, c0) : null);
            AssertWithin(expected, output, RecurrentTolerance, "output");
            AssertWithin(expectedH, hN, RecurrentTolerance, "h_n");
            AssertWithin(expectedC, cN, RecurrentTolerance, "c_n");
        }
        else
        {
            using var module = GRU(inputSize, hiddenSize, layers, bias, batchFirst, bidirectional: bidirectional);
            Float16GRU gru = Float16GRU.FromGRU("M", "rnn", module);
            Assert.Equal(new RecurrentShape(inputSize, hiddenSize, layers, bidirectional, batchFirst), gru.Shape);
            RoundWeightsInPlace(module);
            (Tensor expected, Tensor expectedH) = module.forward(input, initialStates ? h0 : null);
            (Tensor output, Tensor hN) = gru.Forward(input, initialStates ? h0 : null);
            AssertWithin(expected, output, RecurrentTolerance, "output");
            AssertWithin(expectedH, hN, RecurrentTolerance, "h_n");
        }
    }

    [Fact]
    public void A_recurrent_layer_keeps_each_weight_in_float16_and_gives_the_same_bits_at_every_gemm_width()
    {
        torch.manual_seed(2400);
        using var module = LSTM(6, 5, 2, bidirectional: true);
        Float16LSTM reference = Float16LSTM.FromLSTM("M", "rnn", module);
        foreach ((string name, Parameter parameter) in module.named_parameters().Where(p => p.name.StartsWith("weight", StringComparison.Ordinal)))
        {
            string suffix = name[10..];
            int cell = suffix switch { "l0" => 0, "l0_reverse" => 1, "l1" => 2, _ => 3 };
            Float16Linear projection = name.StartsWith("weight_ih", StringComparison.Ordinal) ? reference.InputProjection(cell) : reference.HiddenProjection(cell);
            Assert.Equal(Float16Rounded(parameter).data<float>().ToArray(), Float16Weights.Widen(projection.Weight));
        }

        Float16RecurrentCellWeights[] cells = Enumerable.Range(0, 4)
            .Select(c => new Float16RecurrentCellWeights(reference.InputProjection(c).Weight, reference.HiddenProjection(c).Weight, reference.InputProjection(c).Bias, reference.HiddenProjection(c).Bias))
            .ToArray();
        float[] input = Enumerable.Range(0, 8 * 2 * 6).Select(i => MathF.Cos(i * 0.7f) * 2).ToArray();
        float[] expected = Run(new Float16LSTM("M", "rnn", reference.Shape, cells, vectorBits: 0), input, 8, 2);
        foreach (int bits in new[] { 256, 512 }.Where(Float32GemmKernel.IsSupported))
        {
            Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), Run(new Float16LSTM("M", "rnn", reference.Shape, cells, bits), input, 8, 2).Select(BitConverter.SingleToInt32Bits));
        }

        Assert.Equal("DynamicQuantizedLSTM(6, 5, num_layers=2, bidirectional=True, dtype=torch.float16)", reference.ToString());
    }

    [Fact]
    public void The_span_forward_allocates_nothing_in_steady_state_and_threads_share_one_layer()
    {
        torch.manual_seed(2500);
        using var module = GRU(6, 8, 2, bidirectional: true);
        Float16GRU gru = Float16GRU.FromGRU("M", "rnn", module);
        const int sequenceLength = 12, batch = 1;
        float[] input = Enumerable.Range(0, sequenceLength * batch * 6).Select(i => MathF.Sin(i * 1.3f)).ToArray();
        var output = new float[sequenceLength * batch * 16];
        var hN = new float[4 * batch * 8];
        gru.Forward(input, sequenceLength, batch, default, output, hN);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++)
        {
            gru.Forward(input, sequenceLength, batch, default, output, hN);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);

        float[][] inputs = Enumerable.Range(0, 6).Select(i => Enumerable.Range(0, (4 + i) * 2 * 6).Select(j => MathF.Sin((i * 31) + j)).ToArray()).ToArray();
        float[][] sequential = inputs.Select((x, i) => RunGru(gru, x, 4 + i, 2)).ToArray();
        var parallel = new float[inputs.Length * 4][];
        Parallel.For(0, parallel.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = RunGru(gru, inputs[i % inputs.Length], 4 + (i % inputs.Length), 2));
        for (int i = 0; i < parallel.Length; i++)
        {
            Assert.Equal(sequential[i % inputs.Length], parallel[i]);
        }
    }

    [Fact]
    public void A_recurrent_layer_lets_nan_through_and_refuses_bad_shapes_naming_the_layer()
    {
        torch.manual_seed(2600);
        using var scope = torch.NewDisposeScope();
        using var module = LSTM(4, 3);
        Float16LSTM lstm = Float16LSTM.FromLSTM("Tagger", "encoder", module);
        Tensor x = torch.randn(5, 2, 4);
        x[2, 1, 0].fill_(float.NaN);
        (Tensor output, _, _) = lstm.Forward(x);
        Assert.False(output[1].isnan().any().item<bool>(), "the steps before the NaN are numbers");
        Assert.True(output[4, 1].isnan().all().item<bool>(), "the sequence with the NaN carries it on, as the float LSTM does");
        Assert.False(output[4, 0].isnan().any().item<bool>(), "the other sequence is untouched");

        var empty = Assert.Throws<ArgumentException>(() => lstm.Forward(torch.zeros(0, 2, 4)));
        Assert.Contains("Tagger.encoder", empty.Message, StringComparison.Ordinal);
        Assert.Contains("seq_len=0", empty.Message, StringComparison.Ordinal);
        var state = Assert.Throws<ArgumentException>(() => lstm.Forward(torch.zeros(3, 2, 4), (torch.zeros(1, 2, 3), torch.zeros(2, 2, 3))));
        Assert.Contains("c_0", state.Message, StringComparison.Ordinal);
        var cells = Assert.Throws<ArgumentException>(() => new Float16GRU("Tagger", "gru", new RecurrentShape(4, 3, 2), [new Float16RecurrentCellWeights(new Half[36], new Half[27], null, null)]));
        Assert.Contains("Tagger.gru: expected 2 cells", cells.Message, StringComparison.Ordinal);
        var weight = Assert.Throws<ArgumentException>(() => new Float16GRU("Tagger", "gru", new RecurrentShape(4, 3), [new Float16RecurrentCellWeights(new Half[35], new Half[27], null, null)]));
        Assert.Contains("Tagger.gru.weight_ih_l0", weight.Message, StringComparison.Ordinal);
    }

    private static float[] Run(Float16LSTM lstm, float[] input, int sequenceLength, int batch)
    {
        RecurrentShape s = lstm.Shape;
        var output = new float[sequenceLength * batch * s.OutputSize];
        var hN = new float[s.Cells * batch * s.HiddenSize];
        var cN = new float[hN.Length];
        lstm.Forward(input, sequenceLength, batch, default, default, output, hN, cN);
        return [.. output, .. hN, .. cN];
    }

    private static float[] RunGru(Float16GRU gru, float[] input, int sequenceLength, int batch)
    {
        RecurrentShape s = gru.Shape;
        var output = new float[sequenceLength * batch * s.OutputSize];
        var hN = new float[s.Cells * batch * s.HiddenSize];
        gru.Forward(input, sequenceLength, batch, default, output, hN);
        return [.. output, .. hN];
    }
}
