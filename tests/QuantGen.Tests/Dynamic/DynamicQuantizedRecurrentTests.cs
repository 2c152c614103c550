using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using QuantGen.Dynamic;
using QuantGen.Kernels;
using QuantGen.Tests.Binding;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Dynamic;

/// <summary>
/// The dynamic LSTM and GRU against an independent re-computation with TorchSharp float ops (docs/numerics.md §10):
/// the integer weights and scales are read from the layer, the rest — the per-call input qparams from the documented
/// formula, quantize/dequantize, matmul, gates, the walk over layers, directions and steps — is written here with
/// torch ops on whole tensors.
/// </summary>
// Builds TorchSharp modules from torch.manual_seed: kept away from other tests drawing on libtorch's generator.
[Collection(SeededTorchCollection.Name)]
public class DynamicQuantizedRecurrentTests
{
    /// <summary>
    /// Float32 tolerance of the re-computation: the integer accumulators and their scaling are the same bits; the
    /// gates' sigmoid/tanh are libtorch's vectorised ones here and MathF's in the layer (a few ulps apart), which
    /// moves h by ~1e-7 per step. A flip of one quantized hidden value would move a gate by ~1e-3, far above this.
    /// </summary>
    private const float RecomputeTolerance = 2e-5f;

    public static TheoryData<bool, QuantBackend, int, bool, bool, bool, bool, bool> Cases()
    {
        // isLstm, backend, layers, bidirectional, batchFirst, bias, initial states, per-channel.
        var data = new TheoryData<bool, QuantBackend, int, bool, bool, bool, bool, bool>();
        foreach (bool isLstm in new[] { true, false })
        {
            data.Add(isLstm, QuantBackend.X86, 1, false, false, true, false, false);
            data.Add(isLstm, QuantBackend.Qnnpack, 1, false, true, false, true, false);
            data.Add(isLstm, QuantBackend.X86, 2, true, false, true, true, true);
            data.Add(isLstm, QuantBackend.Qnnpack, 3, true, true, true, false, false);
            data.Add(isLstm, QuantBackend.X86, 2, false, true, false, false, true);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardEqualsTheRecurrenceRecomputedWithTorchOps(bool isLstm, QuantBackend backend, int layers, bool bidirectional, bool batchFirst, bool bias, bool initialStates, bool perChannel)
    {
        const int inputSize = 7, hiddenSize = 5, sequenceLength = 6, batch = 3;
        torch.manual_seed(1500 + layers);
        using var scope = torch.NewDisposeScope();
        Tensor input = Shaped(torch.randn(sequenceLength, batch, inputSize) * 1.7f + 0.4f, batchFirst);
        int cells = layers * (bidirectional ? 2 : 1);
        Tensor? h0 = initialStates ? torch.rand(cells, batch, hiddenSize) * 1.6f - 0.8f : null;
        Tensor? c0 = initialStates ? torch.randn(cells, batch, hiddenSize) : null;

        if (isLstm)
        {
            using var module = LSTM(inputSize, hiddenSize, layers, bias, batchFirst, bidirectional: bidirectional);
            DynamicQuantizedLSTM lstm = DynamicQuantizedLSTM.FromLSTM("M", "rnn", module, backend, perChannel);
            Assert.Equal(new RecurrentShape(inputSize, hiddenSize, layers, bidirectional, batchFirst), lstm.Shape);
            (Tensor output, Tensor hN, Tensor cN) = lstm.Forward(input, initialStates ? (h0!, c0!) : null);
            (Tensor expectedOutput, Tensor expectedH, Tensor? expectedC) = Recompute(true, lstm.Shape, backend, lstm.InputProjection, lstm.HiddenProjection, input, h0, c0);
            AssertClose(expectedOutput, output, RecomputeTolerance, "output");
            AssertClose(expectedH, hN, RecomputeTolerance, "h_n");
            AssertClose(expectedC!, cN, RecomputeTolerance, "c_n");
        }
        else
        {
            using var module = GRU(inputSize, hiddenSize, layers, bias, batchFirst, bidirectional: bidirectional);
            DynamicQuantizedGRU gru = DynamicQuantizedGRU.FromGRU("M", "rnn", module, backend, perChannel);
            Assert.Equal(new RecurrentShape(inputSize, hiddenSize, layers, bidirectional, batchFirst), gru.Shape);
            (Tensor output, Tensor hN) = gru.Forward(input, h0);
            (Tensor expectedOutput, Tensor expectedH, _) = Recompute(false, gru.Shape, backend, gru.InputProjection, gru.HiddenProjection, input, h0, null);
            AssertClose(expectedOutput, output, RecomputeTolerance, "output");
            AssertClose(expectedH, hN, RecomputeTolerance, "h_n");
        }
    }

    [Theory]
    [InlineData(true, QuantBackend.X86)]
    [InlineData(true, QuantBackend.Qnnpack)]
    [InlineData(false, QuantBackend.X86)]
    [InlineData(false, QuantBackend.Qnnpack)]
    public void ForwardIsCloseToTorchSharpsFloatModule(bool isLstm, QuantBackend backend)
    {
        const int inputSize = 13, hiddenSize = 9, sequenceLength = 11, batch = 2;
        torch.manual_seed(77);
        using var scope = torch.NewDisposeScope();
        Tensor input = torch.randn(sequenceLength, batch, inputSize);
        Tensor h0 = torch.rand(4, batch, hiddenSize) - 0.5f;
        Tensor c0 = torch.randn(4, batch, hiddenSize);

        // Quantization error, not float error: 7-bit (X86) or 8-bit inputs and 8-bit weights over 13 or 9 terms per
        // gate move a gate by up to a few hundredths; h and c are bounded (|h| < 1), so the error does not grow.
        float tolerance = 0.06f;
        if (isLstm)
        {
            using var module = LSTM(inputSize, hiddenSize, 2, bidirectional: true);
            DynamicQuantizedLSTM lstm = DynamicQuantizedLSTM.FromLSTM("M", "rnn", module, backend);
            (Tensor expected, Tensor expectedH, Tensor expectedC) = module.forward(input, (h0, c0));
            (Tensor output, Tensor hN, Tensor cN) = lstm.Forward(input, (h0, c0));
            AssertClose(expected, output, tolerance, "output");
            AssertClose(expectedH, hN, tolerance, "h_n");
            AssertClose(expectedC, cN, tolerance * 2, "c_n");
            Assert.True(output.sub(expected).abs().max().item<float>() > 0f, "the int8 LSTM should not be the float one");
        }
        else
        {
            using var module = GRU(inputSize, hiddenSize, 2, bidirectional: true);
            DynamicQuantizedGRU gru = DynamicQuantizedGRU.FromGRU("M", "rnn", module, backend);
            (Tensor expected, Tensor expectedH) = module.forward(input, h0);
            (Tensor output, Tensor hN) = gru.Forward(input, h0);
            AssertClose(expected, output, tolerance, "output");
            AssertClose(expectedH, hN, tolerance, "h_n");
            Assert.True(output.sub(expected).abs().max().item<float>() > 0f, "the int8 GRU should not be the float one");
        }
    }

    [Fact]
    public void EveryKernelGivesTheSameBits()
    {
        const int inputSize = 9, hiddenSize = 7, sequenceLength = 5, batch = 1;
        torch.manual_seed(31);
        using var module = LSTM(inputSize, hiddenSize, 2, bidirectional: true);
        DynamicQuantizedLSTM reference = DynamicQuantizedLSTM.FromLSTM("M", "rnn", module, QuantBackend.X86);
        RecurrentCellWeights[] cells = CellsOf(reference.Shape, reference.InputProjection, reference.HiddenProjection);
        float[] input = RandomValues(new Random(3), sequenceLength * batch * inputSize);
        float[] expected = RunSpans(reference, input, sequenceLength, batch);

        int kernels = 0;
        foreach (GemmConfig config in GemmConfig.All.Where(c => c.IsSupported))
        {
            var lstm = new DynamicQuantizedLSTM("M", "rnn", reference.Shape, cells, QuantBackend.X86, config);
            float[] actual = RunSpans(lstm, input, sequenceLength, batch);
            Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
            kernels++;
        }

        // With every SIMD ISA switched off (the per-ISA CI loop) only the scalar reference runs here.
        Assert.True(kernels >= 1);
    }

    [Fact]
    public void BatchFirstOnlyMovesTheRowsTheBitsAreTheSame()
    {
        // The whole input's min/max decides the qparams, wherever row (t, n) lives: [N, T, in] gives exactly the
        // transposed [T, N, in] result.
        torch.manual_seed(16);
        using var scope = torch.NewDisposeScope();
        using var module = LSTM(5, 4, 2, bidirectional: true);
        DynamicQuantizedLSTM timeMajor = DynamicQuantizedLSTM.FromLSTM("M", "rnn", module, QuantBackend.X86, batchFirst: false);
        var batchFirst = new DynamicQuantizedLSTM("M", "rnn", timeMajor.Shape with { BatchFirst = true }, CellsOf(timeMajor.Shape, timeMajor.InputProjection, timeMajor.HiddenProjection), QuantBackend.X86);
        Tensor input = torch.randn(6, 3, 5);
        (Tensor h0, Tensor c0) = (torch.randn(4, 3, 4) * 0.3f, torch.randn(4, 3, 4));
        (Tensor output, Tensor hN, Tensor cN) = timeMajor.Forward(input, (h0, c0));
        (Tensor outputBatchFirst, Tensor hNBatchFirst, Tensor cNBatchFirst) = batchFirst.Forward(input.transpose(0, 1).contiguous(), (h0, c0));
        Assert.True(output.equal(outputBatchFirst.transpose(0, 1)).all().item<bool>());
        Assert.True(hN.equal(hNBatchFirst).all().item<bool>());
        Assert.True(cN.equal(cNBatchFirst).all().item<bool>());
    }

    [Fact]
    public void UnbatchedInputEqualsABatchOfOne()
    {
        torch.manual_seed(5);
        using var scope = torch.NewDisposeScope();
        using var module = GRU(4, 6, 2);
        DynamicQuantizedGRU gru = DynamicQuantizedGRU.FromGRU("M", "rnn", module, QuantBackend.X86);
        Tensor input = torch.randn(5, 4);
        Tensor h0 = torch.randn(2, 6) * 0.5f;
        (Tensor output, Tensor hN) = gru.Forward(input, h0);
        (Tensor batchedOutput, Tensor batchedH) = gru.Forward(input.unsqueeze(1), h0.unsqueeze(1));
        Assert.Equal(new long[] { 5, 6 }, output.shape);
        Assert.Equal(new long[] { 2, 6 }, hN.shape);
        Assert.True(output.equal(batchedOutput.squeeze(1)).all().item<bool>());
        Assert.True(hN.equal(batchedH.squeeze(1)).all().item<bool>());
    }

    [Fact]
    public void SpanForwardAllocatesNothingInSteadyState()
    {
        torch.manual_seed(8);
        using var module = LSTM(6, 8, 2, bidirectional: true);
        DynamicQuantizedLSTM lstm = DynamicQuantizedLSTM.FromLSTM("M", "rnn", module, QuantBackend.X86);
        const int sequenceLength = 12, batch = 1;
        float[] input = RandomValues(new Random(1), sequenceLength * batch * 6);
        var output = new float[sequenceLength * batch * 16];
        var hN = new float[4 * batch * 8];
        var cN = new float[hN.Length];
        lstm.Forward(input, sequenceLength, batch, default, default, output, hN, cN);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++)
        {
            lstm.Forward(input, sequenceLength, batch, default, default, output, hN, cN);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void ManyThreadsAtOnceGiveTheSequentialResults()
    {
        torch.manual_seed(9);
        using var module = LSTM(10, 12, 2, bidirectional: true);
        DynamicQuantizedLSTM lstm = DynamicQuantizedLSTM.FromLSTM("M", "rnn", module, QuantBackend.X86);
        var inputs = Enumerable.Range(0, 8).Select(i => RandomValues(new Random(100 + i), (5 + i) * 2 * 10)).ToArray();
        float[][] expected = inputs.Select((x, i) => RunSpans(lstm, x, 5 + i, 2)).ToArray();

        var results = new float[inputs.Length * 6][];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            int which = i % inputs.Length;
            results[i] = RunSpans(lstm, inputs[which], 5 + which, 2);
        });

        for (int i = 0; i < results.Length; i++)
        {
            Assert.Equal(expected[i % inputs.Length], results[i]);
        }
    }

    [Fact]
    public void BadInputIsRefusedNamingTheLayerTheExpectedAndTheActual()
    {
        torch.manual_seed(10);
        using var scope = torch.NewDisposeScope();
        using var module = LSTM(4, 3, 2);
        DynamicQuantizedLSTM lstm = DynamicQuantizedLSTM.FromLSTM("Tagger", "encoder", module, QuantBackend.X86);

        var empty = Assert.Throws<ArgumentException>(() => lstm.Forward(torch.zeros(0, 2, 4)));
        Assert.Contains("Tagger.encoder", empty.Message);
        Assert.Contains("seq_len=0", empty.Message);

        var features = Assert.Throws<ArgumentException>(() => lstm.Forward(torch.zeros(3, 2, 5)));
        Assert.Contains("Tagger.encoder", features.Message);
        Assert.Contains("input_size=4", features.Message);
        Assert.Contains("[3, 2, 5]", features.Message);

        var hidden = Assert.Throws<ArgumentException>(() => lstm.Forward(torch.zeros(3, 2, 4), (torch.zeros(1, 2, 3), torch.zeros(2, 2, 3))));
        Assert.Contains("Tagger.encoder", hidden.Message);
        Assert.Contains("h_0", hidden.Message);
        Assert.Contains("[2, 2, 3]", hidden.Message);
        Assert.Contains("[1, 2, 3]", hidden.Message);

        var batchMismatch = Assert.Throws<ArgumentException>(() => lstm.Forward(torch.zeros(3, 2, 4), (torch.zeros(2, 2, 3), torch.zeros(2, 5, 3))));
        Assert.Contains("c_0", batchMismatch.Message);
        Assert.Contains("[2, 5, 3]", batchMismatch.Message);

        Tensor withNaN = torch.zeros(3, 2, 4);
        withNaN[2, 1, 3] = torch.tensor(float.NaN);
        var nan = Assert.Throws<ArgumentException>(() => lstm.Forward(withNaN));
        Assert.Contains("Tagger.encoder", nan.Message);
        Assert.Contains("NaN", nan.Message);
        Assert.Contains("step 2, batch 1, feature 3", nan.Message);

        var dtype = Assert.Throws<ArgumentException>(() => lstm.Forward(torch.zeros(3, 2, 4, ScalarType.Float64)));
        Assert.Contains("Float32", dtype.Message);

        // The span overload: every length is checked before any kernel runs.
        var spanLength = Assert.Throws<ArgumentException>(() => lstm.Forward(new float[23], 3, 2, default, default, new float[18], new float[12], new float[12]));
        Assert.Contains("Tagger.encoder", spanLength.Message);
        Assert.Contains("expected input of 24 values", spanLength.Message);
        Assert.Contains("got 23", spanLength.Message);
        var zeroSteps = Assert.Throws<ArgumentException>(() => lstm.Forward([], 0, 2, default, default, [], new float[12], new float[12]));
        Assert.Contains("seq_len=0", zeroSteps.Message);
        var onlyH0 = Assert.Throws<ArgumentException>(() => lstm.Forward(new float[24], 3, 2, new float[12], default, new float[18], new float[12], new float[12]));
        Assert.Contains("both h_0 and c_0", onlyH0.Message);

        using var gruModule = GRU(4, 3);
        DynamicQuantizedGRU gru = DynamicQuantizedGRU.FromGRU("Tagger", "decoder", gruModule, QuantBackend.Qnnpack);
        Tensor infinite = torch.zeros(2, 1, 4);
        infinite[1, 0, 2] = torch.tensor(float.PositiveInfinity);
        var gruInfinite = Assert.Throws<ArgumentException>(() => gru.Forward(infinite));
        Assert.Contains("Tagger.decoder", gruInfinite.Message);
        Assert.Contains("Infinity at step 1, batch 0, feature 2", gruInfinite.Message);
        var gruH0 = Assert.Throws<ArgumentException>(() => gru.Forward(torch.zeros(2, 1, 4), torch.full(1, 1, 3, float.NaN)));
        Assert.Contains("h_0 value NaN at l0, batch 0, feature 0", gruH0.Message);
    }

    [Fact]
    public void BatchFirstIsReadFromTheModuleAndTheReprIsPyTorchs()
    {
        torch.manual_seed(11);
        using var first = LSTM(3, 4, 2, bias: false, batchFirst: true, bidirectional: true);
        DynamicQuantizedLSTM lstm = DynamicQuantizedLSTM.FromLSTM("M", "rnn", first, QuantBackend.X86);
        Assert.True(lstm.Shape.BatchFirst);
        Assert.Equal("DynamicQuantizedLSTM(3, 4, num_layers=2, bias=False, batch_first=True, bidirectional=True)", lstm.ToString());

        using var second = GRU(3, 4);
        DynamicQuantizedGRU gru = DynamicQuantizedGRU.FromGRU("M", "rnn", second, QuantBackend.X86);
        Assert.False(gru.Shape.BatchFirst);
        Assert.Equal("DynamicQuantizedGRU(3, 4)", gru.ToString());

        // Explicit batch_first wins over the probe.
        DynamicQuantizedGRU told = DynamicQuantizedGRU.FromGRU("M", "rnn", second, QuantBackend.X86, batchFirst: true);
        Assert.True(told.Shape.BatchFirst);
    }

    [Fact]
    public void TheWholeSequenceIsQuantizedOnceAndTheHiddenStateOncePerStep()
    {
        // One LSTM step at batch 1 whose hidden state starts at zero: the hidden projection then gives exactly its
        // bias, and the result is decided by the input projection's qparams alone. Over two steps, the second step's
        // input shares the first's qparams (the whole [T·N, in] input is quantized at once): a layer that quantized
        // each step on its own would give a different first-step output when the second step widens the range.
        torch.manual_seed(12);
        using var scope = torch.NewDisposeScope();
        using var module = LSTM(3, 2);
        DynamicQuantizedLSTM lstm = DynamicQuantizedLSTM.FromLSTM("M", "rnn", module, QuantBackend.X86);
        Tensor step0 = torch.tensor(new[] { 0.3f, -0.2f, 0.11f }).reshape(1, 1, 3);
        Tensor step1 = torch.tensor(new[] { 5f, -4f, 3f }).reshape(1, 1, 3);
        (Tensor alone, _, _) = lstm.Forward(step0);
        (Tensor together, _, _) = lstm.Forward(torch.cat([step0, step1], 0));
        (Tensor expected, _, _) = Recompute(true, lstm.Shape, QuantBackend.X86, lstm.InputProjection, lstm.HiddenProjection, torch.cat([step0, step1], 0), null, null);
        AssertClose(expected, together, RecomputeTolerance, "output");
        Assert.False(alone[0].equal(together[0]).all().item<bool>(), "the first step should see the sequence's qparams");
    }

    [Theory]
    [InlineData(QuantBackend.X86, true)]
    [InlineData(QuantBackend.Qnnpack, false)]
    public void CellsAreOneStepOfTheRecurrence(QuantBackend backend, bool perChannel)
    {
        const int inputSize = 11, hiddenSize = 6, batch = 3;
        torch.manual_seed(13);
        using var scope = torch.NewDisposeScope();
        Tensor x = torch.randn(batch, inputSize) * 2f;
        Tensor h = torch.rand(batch, hiddenSize) - 0.5f;
        Tensor c = torch.randn(batch, hiddenSize);
        var shape = new RecurrentShape(inputSize, hiddenSize);

        using var lstmModule = LSTMCell(inputSize, hiddenSize);
        DynamicQuantizedLSTMCell lstm = DynamicQuantizedLSTMCell.FromLSTMCell("M", "cell", lstmModule, backend, perChannel);
        (Tensor hOut, Tensor cOut) = lstm.Forward(x, (h, c));
        (Tensor expectedH, Tensor expectedHn, Tensor? expectedC) = Recompute(true, shape, backend, _ => lstm.InputProjection, _ => lstm.HiddenProjection, x.unsqueeze(0), h.unsqueeze(0), c.unsqueeze(0));
        AssertClose(expectedH.squeeze(0), hOut, RecomputeTolerance, "LSTMCell h");
        AssertClose(expectedC!.squeeze(0), cOut, RecomputeTolerance, "LSTMCell c");
        (Tensor floatH, Tensor floatC) = lstmModule.forward(x, (h, c));
        AssertClose(floatH, hOut, 0.06f, "LSTMCell h against the float cell");
        AssertClose(floatC, cOut, 0.12f, "LSTMCell c against the float cell");
        Assert.Equal("DynamicQuantizedLSTMCell(11, 6)", lstm.ToString());

        using var gruModule = GRUCell(inputSize, hiddenSize, bias: false);
        DynamicQuantizedGRUCell gru = DynamicQuantizedGRUCell.FromGRUCell("M", "cell", gruModule, backend, perChannel);
        Tensor gruH = gru.Forward(x, h);
        (Tensor expectedGru, _, _) = Recompute(false, shape, backend, _ => gru.InputProjection, _ => gru.HiddenProjection, x.unsqueeze(0), h.unsqueeze(0), null);
        AssertClose(expectedGru.squeeze(0), gruH, RecomputeTolerance, "GRUCell h");
        AssertClose(gruModule.forward(x, h), gruH, 0.06f, "GRUCell h against the float cell");
        Assert.Equal("DynamicQuantizedGRUCell(11, 6, bias=False)", gru.ToString());

        // Unbatched, and zeros for a missing state.
        Tensor single = gru.Forward(x[1]);
        Assert.Equal(new long[] { hiddenSize }, single.shape);
        Assert.True(single.equal(gru.Forward(x[1].unsqueeze(0), torch.zeros(1, hiddenSize))[0]).all().item<bool>());

        var wrongState = Assert.Throws<ArgumentException>(() => lstm.Forward(x, (h, torch.zeros(batch, hiddenSize + 1))));
        Assert.Contains("M.cell", wrongState.Message);
        Assert.Contains($"[{batch}, {hiddenSize}]", wrongState.Message);
        Assert.Contains($"[{batch}, {hiddenSize + 1}]", wrongState.Message);
        var wrongInput = Assert.Throws<ArgumentException>(() => gru.Forward(torch.zeros(batch, inputSize - 1)));
        Assert.Contains("input_size=11", wrongInput.Message);
        var empty = Assert.Throws<ArgumentException>(() => gru.Forward(torch.zeros(0, inputSize)));
        Assert.Contains("batch=0", empty.Message);
    }

    [Theory]
    [InlineData(NonLinearities.Tanh, QuantBackend.X86)]
    [InlineData(NonLinearities.ReLU, QuantBackend.Qnnpack)]
    public void RnnCellsFindTheirNonlinearityAndEqualTheTorchOpsStep(NonLinearities floatNonlinearity, QuantBackend backend)
    {
        const int inputSize = 9, hiddenSize = 7, batch = 2;
        torch.manual_seed(14);
        using var scope = torch.NewDisposeScope();
        Tensor x = torch.randn(batch, inputSize);
        Tensor h = torch.rand(batch, hiddenSize) - 0.5f;
        using var module = RNNCell(inputSize, hiddenSize, floatNonlinearity);
        DynamicQuantizedRNNCell cell = DynamicQuantizedRNNCell.FromRNNCell("M", "rnn", module, backend);
        RecurrentNonlinearity expectedNonlinearity = floatNonlinearity == NonLinearities.ReLU ? RecurrentNonlinearity.Relu : RecurrentNonlinearity.Tanh;
        Assert.Equal(expectedNonlinearity, cell.Nonlinearity);

        Tensor actual = cell.Forward(x, h);
        Tensor sum = DynamicLinear(h, cell.HiddenProjection, backend) + DynamicLinear(x, cell.InputProjection, backend);
        Tensor expected = expectedNonlinearity == RecurrentNonlinearity.Relu ? sum.relu() : torch.tanh(sum);
        AssertClose(expected, actual, RecomputeTolerance, "RNNCell h");
        AssertClose(module.forward(x, h), actual, 0.06f, "RNNCell h against the float cell");
        Assert.Equal(expectedNonlinearity == RecurrentNonlinearity.Relu ? "DynamicQuantizedRNNCell(9, 7, nonlinearity=relu)" : "DynamicQuantizedRNNCell(9, 7)", cell.ToString());
    }

    private static Tensor Shaped(Tensor timeMajor, bool batchFirst) => batchFirst ? timeMajor.transpose(0, 1).contiguous() : timeMajor;

    private static float[] RandomValues(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)(random.NextDouble() * 4.0) - 1.5f;
        }

        return values;
    }

    private static float[] RunSpans(DynamicQuantizedLSTM lstm, float[] input, int sequenceLength, int batch)
    {
        RecurrentShape s = lstm.Shape;
        var output = new float[sequenceLength * batch * s.OutputSize];
        var hN = new float[s.Cells * batch * s.HiddenSize];
        var cN = new float[hN.Length];
        lstm.Forward(input, sequenceLength, batch, default, default, output, hN, cN);
        return [.. output, .. hN, .. cN];
    }

    private static RecurrentCellWeights[] CellsOf(RecurrentShape shape, Func<int, DynamicQuantizedLinear> inputProjection, Func<int, DynamicQuantizedLinear> hiddenProjection) =>
        Enumerable.Range(0, shape.Cells)
            .Select(cell => new RecurrentCellWeights(inputProjection(cell).Weight, hiddenProjection(cell).Weight, inputProjection(cell).Bias, hiddenProjection(cell).Bias))
            .ToArray();

    private static void AssertClose(Tensor expected, Tensor actual, float tolerance, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        float difference = expected.sub(actual).abs().max().item<float>();
        Assert.True(difference <= tolerance, $"{what}: max |difference| {difference} > {tolerance}");
    }

    /// <summary>
    /// aten's CPU recurrence written with torch ops: for each layer and direction, the dynamic linear over the whole
    /// sequence at once; per step, the dynamic linear over the hidden state, the gates, the new states.
    /// </summary>
    private static (Tensor Output, Tensor HN, Tensor? CN) Recompute(
        bool isLstm, RecurrentShape shape, QuantBackend backend, Func<int, DynamicQuantizedLinear> inputProjection, Func<int, DynamicQuantizedLinear> hiddenProjection,
        Tensor input, Tensor? h0, Tensor? c0)
    {
        Tensor layerInput = shape.BatchFirst ? input.transpose(0, 1) : input; // [T, N, in]
        long sequenceLength = layerInput.shape[0];
        long batch = layerInput.shape[1];
        var finalH = new List<Tensor>();
        var finalC = new List<Tensor>();
        for (int layer = 0; layer < shape.NumLayers; layer++)
        {
            var directionOutputs = new List<Tensor>();
            for (int direction = 0; direction < shape.Directions; direction++)
            {
                int cell = (layer * shape.Directions) + direction;
                Tensor projected = DynamicLinear(layerInput.reshape(sequenceLength * batch, -1), inputProjection(cell), backend).reshape(sequenceLength, batch, -1);
                Tensor h = h0 is null ? torch.zeros(batch, shape.HiddenSize) : h0[cell];
                Tensor c = c0 is null ? torch.zeros(batch, shape.HiddenSize) : c0[cell];
                var steps = new Tensor[sequenceLength];
                for (long step = 0; step < sequenceLength; step++)
                {
                    long t = direction == 1 ? sequenceLength - 1 - step : step;
                    Tensor hiddenGates = DynamicLinear(h, hiddenProjection(cell), backend);
                    Tensor inputGates = projected[t];
                    if (isLstm)
                    {
                        Tensor[] g = (hiddenGates + inputGates).chunk(4, 1);
                        c = (torch.sigmoid(g[1]) * c) + (torch.sigmoid(g[0]) * torch.tanh(g[2]));
                        h = torch.sigmoid(g[3]) * torch.tanh(c);
                    }
                    else
                    {
                        Tensor[] hg = hiddenGates.chunk(3, 1);
                        Tensor[] ig = inputGates.chunk(3, 1);
                        Tensor r = torch.sigmoid(hg[0] + ig[0]);
                        Tensor z = torch.sigmoid(hg[1] + ig[1]);
                        Tensor n = torch.tanh(ig[2] + (hg[2] * r));
                        h = ((h - n) * z) + n;
                    }

                    steps[t] = h;
                }

                directionOutputs.Add(torch.stack(steps, 0));
                finalH.Add(h);
                finalC.Add(c);
            }

            layerInput = torch.cat(directionOutputs, 2);
        }

        Tensor output = shape.BatchFirst ? layerInput.transpose(0, 1).contiguous() : layerInput;
        return (output, torch.stack(finalH, 0), isLstm ? torch.stack(finalC, 0) : null);
    }

    /// <summary>
    /// docs/numerics.md §8 with torch ops: the input's qparams from its min and max, quantize (X86: zero point added
    /// before rounding; Qnnpack: after), the integer product as a float matmul (exact: every partial sum is an
    /// integer below 2^24), then <c>acc · (sx · sw_c) + b_c</c>.
    /// </summary>
    private static Tensor DynamicLinear(Tensor x, DynamicQuantizedLinear linear, QuantBackend backend)
    {
        (float sx, int zx) = DynamicQParams.ForInput(x.min().item<float>(), x.max().item<float>(), backend);
        float inverse = 1.0f / sx;
        Tensor q = backend == QuantBackend.X86
            ? torch.round(x * inverse + zx).clamp(0, 255)
            : (torch.round(x * inverse) + zx).clamp(0, 255);
        QTensor weight = linear.Weight;
        int outFeatures = weight.ShapeSpan[0];
        float[] scales = weight.QParams.IsPerChannel ? weight.QParams.Scales : Enumerable.Repeat(weight.QParams.Scale, outFeatures).ToArray();
        int[] zeroPoints = weight.QParams.IsPerChannel ? weight.QParams.ZeroPoints : Enumerable.Repeat(weight.QParams.ZeroPoint, outFeatures).ToArray();
        int[] raw = weight.IntRepr();
        int inFeatures = weight.ShapeSpan[1];
        var centred = new float[raw.Length];
        for (int i = 0; i < raw.Length; i++)
        {
            centred[i] = raw[i] - zeroPoints[i / inFeatures];
        }

        Tensor w = torch.tensor(centred, [outFeatures, inFeatures]);
        Tensor accumulators = torch.matmul(q - zx, w.t());
        float[] multipliers = scales.Select(s => sx * s).ToArray();
        Tensor y = accumulators * torch.tensor(multipliers);
        float[]? bias = linear.Bias;
        return bias is null ? y : y + torch.tensor(bias);
    }
}
