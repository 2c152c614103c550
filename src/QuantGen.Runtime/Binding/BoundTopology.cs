using System;
using System.Collections.Generic;
using QuantGen.Graphs;
using QuantGen.Serialization;

namespace QuantGen.Binding;

/// <summary>One int8 step of a saved bound model: its layer's name, its op, the values it reads and writes.</summary>
/// <param name="Name">The layer's name (its record in the file).</param>
/// <param name="Op">The int8 op.</param>
/// <param name="Inputs">Values read (0 is the model input).</param>
/// <param name="Output">The value written.</param>
public sealed record BoundTopologyStep(string Name, GraphOp Op, int[] Inputs, int Output);

/// <summary>
/// The ops and edges of a model bound at <c>Prepare()</c>, as a <c>.qgen</c> file stores them (its first record):
/// a file then holds the whole int8 model, loadable with no model instance and no TorchSharp. The constructor is
/// the one check both Convert and a file from disk go through: every step reads only values written before it,
/// writes a new value, and the result is written.
/// </summary>
public sealed class BoundTopology : IQuantizedLayer
{
    /// <summary>Most values a saved bound model may have (far above any real network; bounds what a file makes us allocate).</summary>
    public const int MaxValues = 1 << 16;

    /// <summary>Most inputs one step may read (cat of many tensors).</summary>
    public const int MaxInputs = 1024;

    private readonly BoundTopologyStep[] _steps;

    /// <summary>Checks and creates the topology.</summary>
    /// <param name="model">The model's name.</param>
    /// <param name="valueCount">How many values there are (value 0 is the input).</param>
    /// <param name="result">The value the model returns.</param>
    /// <param name="steps">The int8 steps in evaluation order.</param>
    /// <exception cref="ArgumentException">The steps do not form a valid graph (the message names the step).</exception>
    public BoundTopology(string model, int valueCount, int result, IReadOnlyList<BoundTopologyStep> steps)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentNullException.ThrowIfNull(steps);
        if (valueCount < 1 || valueCount > MaxValues)
        {
            throw new ArgumentException($"{model}: a bound graph has 1 to {MaxValues} values, not {valueCount}.", nameof(valueCount));
        }

        var written = new bool[valueCount];
        written[0] = true;
        _steps = new BoundTopologyStep[steps.Count];
        for (int i = 0; i < steps.Count; i++)
        {
            BoundTopologyStep step = steps[i] ?? throw new ArgumentException($"{model}: step {i} is null.", nameof(steps));
            string where = $"{model}: step {i} ('{step.Name}', {step.Op})";
            if (string.IsNullOrEmpty(step.Name) || step.Inputs is null || step.Inputs.Length == 0 || step.Inputs.Length > MaxInputs)
            {
                throw new ArgumentException($"{where}: needs a name and 1 to {MaxInputs} inputs.", nameof(steps));
            }

            if (step.Op is GraphOp.Quantize || !Enum.IsDefined(step.Op))
            {
                throw new ArgumentException($"{where}: not an op a saved bound model can hold.", nameof(steps));
            }

            if ((step.Op is GraphOp.Add or GraphOp.Mul) != (step.Inputs.Length == 2) && step.Op is not (GraphOp.Cat or GraphOp.FloatIsland))
            {
                throw new ArgumentException($"{where}: reads {step.Inputs.Length} values; {(step.Op is GraphOp.Add or GraphOp.Mul ? $"{step.Op.ToString().ToLowerInvariant()} reads 2" : "it reads 1")}.", nameof(steps));
            }

            foreach (int input in step.Inputs)
            {
                if (input < 0 || input >= valueCount || !written[input])
                {
                    throw new ArgumentException($"{where}: reads value {input}, which no earlier step writes.", nameof(steps));
                }
            }

            if (step.Output <= 0 || step.Output >= valueCount || written[step.Output])
            {
                throw new ArgumentException($"{where}: writes value {step.Output}, which is out of range or already written.", nameof(steps));
            }

            written[step.Output] = true;
            _steps[i] = step with { Inputs = (int[])step.Inputs.Clone() };
        }

        if (result < 0 || result >= valueCount || !written[result])
        {
            throw new ArgumentException($"{model}: the result value {result} is not written by any step.", nameof(result));
        }

        Model = model;
        ValueCount = valueCount;
        Result = result;
    }

    /// <inheritdoc/>
    public string Model { get; }

    /// <summary>The record's name in a file: "graph".</summary>
    public string Layer => "graph";

    /// <summary>How many values there are.</summary>
    public int ValueCount { get; }

    /// <summary>The value the model returns.</summary>
    public int Result { get; }

    /// <summary>The steps in evaluation order.</summary>
    public IReadOnlyList<BoundTopologyStep> Steps => _steps;

    internal void Write(ByteWriter writer)
    {
        writer.U32((uint)ValueCount);
        writer.I32(Result);
        writer.U32((uint)_steps.Length);
        foreach (BoundTopologyStep step in _steps)
        {
            writer.String(step.Name);
            writer.U16((ushort)step.Op);
            writer.U32((uint)step.Inputs.Length);
            writer.Ints(step.Inputs);
            writer.I32(step.Output);
        }
    }

    internal static BoundTopology Read(ref ByteReader reader, string model, string name)
    {
        if (name != "graph")
        {
            throw new ArgumentException($"a bound graph record is named 'graph', not '{name}'.");
        }

        int valueCount = (int)Math.Min(reader.U32("value count"), (uint)MaxValues + 1);
        int result = reader.I32("result value");
        // Each step takes at least 2 + 2 + 4 + 4 + 4 bytes: the count is checked against what remains before allocating.
        int stepCount = reader.Count("step count", 16, QGenLayout.MaxLayers);
        var steps = new BoundTopologyStep[stepCount];
        for (int i = 0; i < stepCount; i++)
        {
            string stepName = reader.String("step name");
            var op = (GraphOp)reader.U16("step op");
            int inputCount = reader.Count("step input count", 4, MaxInputs);
            int[] inputs = reader.Ints(inputCount, "step inputs");
            int output = reader.I32("step output");
            steps[i] = new BoundTopologyStep(stepName, op, inputs, output);
        }

        return new BoundTopology(model, valueCount, result, steps);
    }

    /// <inheritdoc/>
    public override string ToString() => $"BoundGraph({_steps.Length} int8 steps, {ValueCount} values, result t{Result})";
}
