using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Serialization;
using QuantGen.Graphs;
using QuantGen.Modules;
using QuantGen.Observers;
using TorchSharp;

namespace QuantGen.Reports;

/// <summary>
/// A layer-by-layer accuracy report of an int8 model against its fused float model:
/// per quantized layer the layer error, the accumulated error and the weight error as cosine similarity and
/// SQNR, and the activation range chosen with the share of float values it clips.
/// </summary>
/// <remarks>
/// Make one with <see cref="Compare(IFloatModel, IQuantizedModel, IEnumerable{torch.Tensor}, ReportOptions?)"/>;
/// show it with <see cref="ReportTable"/> (terminal), <see cref="ToJson"/> and <see cref="ReportHtml"/>; read a saved
/// report.json back with <see cref="FromJson"/>. Making a report never changes the observed model: its forward
/// runs with observation paused (<see cref="Observation.Pause"/>), so a later <c>Convert()</c> gives the same qparams.
/// docs/reports.md explains each column.
/// </remarks>
/// <example>
/// <code>
/// M.Quantized int8 = observed.Convert();
/// QuantReport report = QuantReport.Compare(observed, int8, batches);
/// ReportTable.Write(report);
/// </code>
/// </example>
public sealed class QuantReport
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    internal QuantReport(string model, string graphHash, int batches, double sqnrThresholdDb, IReadOnlyList<LayerReport> layers)
    {
        Model = model;
        GraphHash = graphHash;
        Batches = batches;
        SqnrThresholdDb = sqnrThresholdDb;
        Layers = layers;
    }

    /// <summary>The model class's name.</summary>
    public string Model { get; }

    /// <summary>The generated graph's identity (<c>M.Quantized.GraphHash</c>).</summary>
    public string GraphHash { get; }

    /// <summary>How many input batches were compared.</summary>
    public int Batches { get; }

    /// <summary>The SQNR (dB) below which a layer is marked (<see cref="ReportOptions.SqnrThresholdDb"/>).</summary>
    public double SqnrThresholdDb { get; }

    /// <summary>One row per quantized layer, in forward order.</summary>
    public IReadOnlyList<LayerReport> Layers { get; }

    /// <summary>
    /// The layers marked as needing a look: those whose layer-error SQNR (else accumulated) is below
    /// <see cref="SqnrThresholdDb"/>, lowest first; empty when every layer is at or above it.
    /// </summary>
    [JsonIgnore]
    public IReadOnlyList<LayerReport> BelowThreshold => Layers.Where(l => l.BelowThreshold).OrderBy(l => l.RankingSqnr).ToList();

    /// <summary>A layer's row.</summary>
    /// <param name="layer">The layer name.</param>
    /// <returns>The row.</returns>
    /// <exception cref="ArgumentException">No such layer (the message lists the layers).</exception>
    public LayerReport this[string layer] =>
        Layers.FirstOrDefault(l => l.Layer == layer)
        ?? throw new ArgumentException($"{Model}: the report has no layer named '{layer}'; the layers are {string.Join(", ", Layers.Select(l => l.Layer))}.", nameof(layer));

    /// <summary>
    /// Runs the fused float model and the int8 model side by side on every input batch and measures each
    /// quantized layer.
    /// </summary>
    /// <param name="floatModel">The float side: <see cref="FloatModel.FromModule"/> over the calibrated <c>M.Observed</c>.</param>
    /// <param name="int8">The converted model (<c>M.Quantized</c>).</param>
    /// <param name="inputs">Float input batches (not disposed here). The float model runs with observation paused: an observed model's observers do not see them.</param>
    /// <param name="options">Histogram bins and the SQNR threshold below which a layer is marked; null for the defaults.</param>
    /// <returns>The report.</returns>
    /// <exception cref="ArgumentException">
    /// The input set is empty; the two models are different architectures (model names, layer names, or
    /// output shapes differ); or a float weight's shape is not the int8 weight's. The message names the model
    /// and layer and what was expected.
    /// </exception>
    public static QuantReport Compare(IFloatModel floatModel, IQuantizedModel int8, IEnumerable<torch.Tensor> inputs, ReportOptions? options = null)
    {
        return CompareCore(floatModel, int8, inputs, options);
    }

    /// <summary>
    /// The one-call form: <c>QuantReport.Compare(observed, int8, inputs)</c> with the calibrated <c>M.Observed</c>
    /// and its converted <c>M.Quantized</c>; the float side is the observed model's fused float forward.
    /// </summary>
    /// <param name="observed">The calibrated observed model.</param>
    /// <param name="int8">The model <c>observed.Convert()</c> returned.</param>
    /// <param name="inputs">Float input batches (not disposed here); the observers do not see them (observation is paused while the report runs).</param>
    /// <param name="options">Histogram bins and the SQNR threshold below which a layer is marked; null for the defaults.</param>
    /// <returns>The report.</returns>
    /// <exception cref="ArgumentException">As the general form: empty inputs, different models (the message names them).</exception>
    public static QuantReport Compare(IObservedModel observed, IQuantizedModel int8, IEnumerable<torch.Tensor> inputs, ReportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(observed);
        ArgumentNullException.ThrowIfNull(int8);
        return CompareCore(FloatModel.FromModule(observed.Model, int8.Graph, observed.forward), int8, inputs, options);
    }

    private static QuantReport CompareCore(IFloatModel floatModel, IQuantizedModel int8, IEnumerable<torch.Tensor> inputs, ReportOptions? options)
    {
        ArgumentNullException.ThrowIfNull(floatModel);
        ArgumentNullException.ThrowIfNull(int8);
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= new ReportOptions();
        if (double.IsNaN(options.SqnrThresholdDb))
        {
            throw new ArgumentException("QuantReport: ReportOptions.SqnrThresholdDb is NaN; give a number of dB (the default is 20).", nameof(options));
        }

        ModelGraph graph = int8.Graph;
        if (floatModel.Model != graph.Model)
        {
            throw new ArgumentException($"QuantReport: cannot compare different models: the float model is {floatModel.Model}, the int8 model {graph.Model} (graph {graph.Hash}).", nameof(floatModel));
        }

        Dictionary<string, IQuantizedLayer> layers = LayersByName(int8);
        var states = graph.Nodes.Select(n => new LayerState(n)).ToArray();
        int batches = 0;
        foreach (torch.Tensor input in inputs)
        {
            ArgumentNullException.ThrowIfNull(input, nameof(inputs));
            batches++;
            RunBatch(floatModel, int8, graph, layers, states, input, options);
        }

        if (batches == 0)
        {
            throw new ArgumentException($"{graph.Model}: the input set is empty; QuantReport.Compare needs at least one float input batch.", nameof(inputs));
        }

        var rows = new List<LayerReport>(states.Length);
        foreach (LayerState state in states)
        {
            ErrorFigure? weightError = WeightError(graph.Model, state.Node, layers[state.Node.Name], floatModel);
            rows.Add(state.ToReport(weightError));
        }

        return new QuantReport(graph.Model, graph.Hash, batches, options.SqnrThresholdDb, Mark(rows, options.SqnrThresholdDb));
    }

    /// <summary>
    /// As <see cref="Compare(IFloatModel, IQuantizedModel, IEnumerable{torch.Tensor}, ReportOptions?)"/> with the float side
    /// made by <see cref="FloatModel.FromModule"/>: <c>QuantReport.Compare(model, observed.forward, int8, batches)</c>.
    /// </summary>
    /// <param name="model">The user's float model (the one <c>Prepare()</c> was called on).</param>
    /// <param name="observedForward">The calibrated observed model's tapped forward, <c>observed.forward</c>.</param>
    /// <param name="int8">The converted model.</param>
    /// <param name="inputs">Float input batches.</param>
    /// <param name="options">Null for the defaults.</param>
    /// <returns>The report.</returns>
    public static QuantReport Compare(torch.nn.Module model, Func<torch.Tensor, IFloatTap?, torch.Tensor> observedForward, IQuantizedModel int8, IEnumerable<torch.Tensor> inputs, ReportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(int8);
        return Compare(FloatModel.FromModule(model, int8.Graph, observedForward), int8, inputs, options);
    }

    /// <summary>The report as indented JSON (camelCase; an exact match's SQNR is the string <c>"Infinity"</c>).</summary>
    /// <returns>The JSON text.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Writes <see cref="ToJson"/> to a file.</summary>
    /// <param name="path">The file to create or overwrite.</param>
    public void WriteJson(string path) => System.IO.File.WriteAllText(path, ToJson());

    /// <summary>Reads a report written by <see cref="ToJson"/> back (to render it again, e.g. <c>quantgen report report.json --html out.html</c>).</summary>
    /// <param name="json">The JSON text.</param>
    /// <param name="source">Where the text came from, for error messages (a file name).</param>
    /// <returns>The report, with every figure, range and histogram as saved.</returns>
    /// <exception cref="FormatException">The text is not a report: the message names the source, the layer and the property that is missing or wrong.</exception>
    public static QuantReport FromJson(string json, string source = "report JSON") => ReportJson.Read(json, source);

    /// <summary>Reads a report.json file written by <see cref="WriteJson"/>.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The report.</returns>
    /// <exception cref="FormatException">The file is not a report (the message names the file, layer and property).</exception>
    /// <exception cref="System.IO.IOException">The file cannot be read.</exception>
    public static QuantReport ReadJson(string path) => ReportJson.Read(System.IO.File.ReadAllText(path), path);

    /// <summary>The same report with layers marked against another SQNR threshold.</summary>
    /// <param name="sqnrThresholdDb">The threshold in dB (see <see cref="ReportOptions.SqnrThresholdDb"/>).</param>
    /// <returns>A new report; this one is unchanged.</returns>
    /// <exception cref="ArgumentException">The threshold is NaN.</exception>
    public QuantReport WithThreshold(double sqnrThresholdDb)
    {
        if (double.IsNaN(sqnrThresholdDb))
        {
            throw new ArgumentException($"{Model}: the SQNR threshold is NaN; give a number of dB.", nameof(sqnrThresholdDb));
        }

        return new QuantReport(Model, GraphHash, Batches, sqnrThresholdDb, Mark(Layers, sqnrThresholdDb));
    }

    /// <summary>Marks each row whose ranking SQNR is below the threshold (and unmarks the others).</summary>
    internal static List<LayerReport> Mark(IEnumerable<LayerReport> rows, double sqnrThresholdDb) =>
        rows.Select(row => row with { BelowThreshold = row.RankingSqnr < sqnrThresholdDb }).ToList();

    /// <summary>The figures as a plain fixed-width text table (the terminal table without colours).</summary>
    /// <returns>The table.</returns>
    public override string ToString() => ReportTable.ToPlainText(this);

    private static Dictionary<string, IQuantizedLayer> LayersByName(IQuantizedModel int8)
    {
        var byName = new Dictionary<string, IQuantizedLayer>(StringComparer.Ordinal);
        foreach (IQuantizedLayer layer in int8.Layers)
        {
            byName[layer.Layer] = layer;
        }

        foreach (GraphNode node in int8.Graph.Nodes)
        {
            if (!byName.ContainsKey(node.Name))
            {
                throw new InvalidOperationException($"{int8.Graph.Model}: the graph has a node {node.Name} but the model has no layer of that name; the layers are {string.Join(", ", byName.Keys)}.");
            }
        }

        return byName;
    }

    private static void RunBatch(IFloatModel floatModel, IQuantizedModel int8, ModelGraph graph, Dictionary<string, IQuantizedLayer> layers, LayerState[] states, torch.Tensor input, ReportOptions options)
    {
        var floatTap = new FloatRecorder();
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        using (Observation.Pause())
        {
            floatModel.Forward(input, floatTap).Dispose();
        }

        float[] inputValues = TensorInterop.ToArray(input, out int[] inputShape);
        var int8Tap = new Int8Recorder();
        int8.forward(int8.Input.Forward(inputValues, inputShape), int8Tap);
        CheckSameLayers(graph, floatTap.Outputs.Keys, int8Tap.Outputs.Keys);

        // Values by graph value name: the float model's and the int8 model's tensor at each point.
        var floatValues = new Dictionary<string, (float[] Values, int[] Shape)>(StringComparer.Ordinal) { [graph.Input] = (inputValues, inputShape) };
        var int8Values = new Dictionary<string, QTensor>(StringComparer.Ordinal);
        foreach (GraphNode node in graph.Nodes)
        {
            floatValues[node.Output] = floatTap.Outputs[node.Name];
            int8Values[node.Output] = int8Tap.Outputs[node.Name];
        }

        foreach (LayerState state in states)
        {
            GraphNode node = state.Node;
            (float[] reference, int[] shape) = floatValues[node.Output];
            QTensor actual = int8Values[node.Output];
            if (!shape.AsSpan().SequenceEqual(actual.Shape))
            {
                throw new ArgumentException($"{graph.Model}.{node.Name}: the float model's output is {ReportText.Shape(shape)} but the int8 model's is {ReportText.Shape(actual.Shape)}; the two are not the same architecture.");
            }

            QTensor? alone = LayerRunner.RunAlone(node, layers[node.Name], floatValues, int8Values);
            state.Add(reference, actual, alone, options.HistogramBins);
        }
    }

    private static void CheckSameLayers(ModelGraph graph, IEnumerable<string> floatLayers, IEnumerable<string> int8Layers)
    {
        var expected = graph.Nodes.Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
        var floatSet = floatLayers.ToHashSet(StringComparer.Ordinal);
        var int8Set = int8Layers.ToHashSet(StringComparer.Ordinal);
        if (floatSet.SetEquals(expected) && int8Set.IsSupersetOf(expected))
        {
            return;
        }

        string onlyInt8 = string.Join(", ", expected.Except(floatSet));
        string onlyFloat = string.Join(", ", floatSet.Except(expected));
        throw new ArgumentException(
            $"{graph.Model}: the float model and the int8 model are not the same architecture: " +
            $"layers the int8 graph has but the float model did not report: [{onlyInt8}]; layers the float model reported that the int8 graph lacks: [{onlyFloat}].");
    }

    private static ErrorFigure? WeightError(string model, GraphNode node, IQuantizedLayer layer, IFloatModel floatModel)
    {
        QTensor? int8Weight = layer switch
        {
            QuantizedConv2d conv => conv.Weight,
            QuantizedLinear linear => linear.Weight,
            QuantizedConvTranspose2d convTranspose => convTranspose.Weight,
            _ => null,
        };
        if (int8Weight is null)
        {
            return null;
        }

        FloatWeight? floatWeight = floatModel.Weight(node.Name);
        if (floatWeight is null)
        {
            return null;
        }

        if (!floatWeight.Shape.AsSpan().SequenceEqual(int8Weight.Shape) || floatWeight.Values.Length != int8Weight.Count)
        {
            throw new ArgumentException($"{model}.{node.Name}: the float weight is {ReportText.Shape(floatWeight.Shape)} ({floatWeight.Values.Length} values) but the int8 weight is {ReportText.Shape(int8Weight.Shape)}; the two are not the same architecture.");
        }

        return ErrorFigure.Of(floatWeight.Values, int8Weight.Dequantize());
    }

    /// <summary>Per-layer running sums across batches.</summary>
    private sealed class LayerState(GraphNode node)
    {
        private readonly ErrorSums _accumulated = new();
        private ErrorSums? _alone;
        private ValueHistogram? _histogram;
        private QParams? _qparams;
        private float _min, _max, _floatMin = float.PositiveInfinity, _floatMax = float.NegativeInfinity;
        private double _clipLow, _clipHigh;
        private long _values, _clipped;

        public GraphNode Node { get; } = node;

        public void Add(float[] reference, QTensor actual, QTensor? alone, int bins)
        {
            _accumulated.Add(reference, actual.Dequantize());
            if (alone is not null)
            {
                (_alone ??= new ErrorSums()).Add(reference, alone.Dequantize());
            }

            if (_qparams is null)
            {
                _qparams = actual.QParams;
                int zeroPoint = _qparams.ZeroPoint;
                _min = (float)(_qparams.DType.Min() - zeroPoint) * _qparams.Scale;
                _max = (float)(_qparams.DType.Max() - zeroPoint) * _qparams.Scale;

                // A value within half a step of the range's ends rounds onto them: it costs no more than rounding
                // anywhere else (an input whose minimum misses (qmin − zp)·scale by a rounding of the zero point is
                // not clipped). Clipped are the values quantize moves by more than half a step.
                double halfStep = 0.5 * _qparams.Scale;
                _clipLow = _min - halfStep;
                _clipHigh = _max + halfStep;
                _histogram = new ValueHistogram(_min, _max, bins);
            }

            foreach (float value in reference)
            {
                _clipped += value < _clipLow || value > _clipHigh ? 1 : 0;
                _floatMin = Math.Min(_floatMin, value);
                _floatMax = Math.Max(_floatMax, value);
            }

            _values += reference.Length;
            _histogram!.Add(reference);
        }

        public LayerReport ToReport(ErrorFigure? weightError)
        {
            QParams q = _qparams!;
            var range = new ActivationRange(q.DType.ToTorchString(), q.Scale, q.ZeroPoint, _min, _max, _clipLow, _clipHigh, _floatMin, _floatMax, _values, _clipped, _histogram!);
            return new LayerReport(Node.Name, Node.Op, Node.Source, Node.Members.Select(m => m.Path).ToList(), _alone?.Figure, _accumulated.Figure, weightError, range);
        }
    }

    private sealed class FloatRecorder : IFloatTap
    {
        public Dictionary<string, (float[] Values, int[] Shape)> Outputs { get; } = new(StringComparer.Ordinal);

        public torch.Tensor? OnLayer(string layer, torch.Tensor output)
        {
            Outputs[layer] = (TensorInterop.ToArray(output, out int[] shape), shape);
            return null;
        }
    }

    private sealed class Int8Recorder : IQuantizedTap
    {
        public Dictionary<string, QTensor> Outputs { get; } = new(StringComparer.Ordinal);

        // A copy: the int8 forward may reuse a layer's buffer for a later layer.
        public void OnLayer(string layer, QTensor output) => Outputs[layer] = new QTensor(output.Shape, output.QParams, output.StorageBytes.ToArray(), output.Format);
    }
}

/// <summary>Options of <see cref="QuantReport.Compare(IFloatModel, IQuantizedModel, IEnumerable{torch.Tensor}, ReportOptions?)"/>.</summary>
public sealed record ReportOptions
{
    /// <summary>Bins of each activation's histogram (even).</summary>
    public int HistogramBins { get; init; } = 128;

    /// <summary>The default of <see cref="SqnrThresholdDb"/>: 20 dB.</summary>
    public const double DefaultSqnrThresholdDb = 20;

    /// <summary>
    /// A layer whose layer-error SQNR (else its accumulated SQNR) is below this many dB is marked (red in the table and
    /// the page). Default <see cref="DefaultSqnrThresholdDb"/>, 20 dB: the error's power a hundredth of the signal's,
    /// about 3.3 bits' worth (each bit is about 6 dB). Healthy int8 layers usually reach 30–45 dB; none is marked
    /// when every layer is at or above the threshold. Use <see cref="double.NegativeInfinity"/> to mark none.
    /// </summary>
    public double SqnrThresholdDb { get; init; } = DefaultSqnrThresholdDb;
}
