using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using QuantGen.Generator.Planning;

namespace QuantGen.Generator.Emitting;

/// <summary>
/// Writes what <c>Quantized</c> offers to tools that work on any model (<c>IQuantizedModel</c>): the graph
/// description (ops, values, the user's members each op stands for), the layers in forward order, the graph's
/// identity, and Save/Load of the <c>.qgen</c> model file.
/// </summary>
internal static class GraphEmitter
{
    /// <summary>Names Quantized declares for <c>IQuantizedModel</c> when no user member already has them.</summary>
    private static readonly string[] PublicNames = { "Graph", "Layers" };

    /// <summary>The members of Quantized besides the layer properties: the interface, the file, the graph.</summary>
    public static void EmitMembers(SourceWriter writer, ModelPlan plan, IReadOnlyCollection<string> layerProperties)
    {
        StepPlan entry = plan.Steps.First(s => s.Kind == StepKind.Quantize);
        string hash = GraphIdentity.Hash(plan);
        var taken = new HashSet<string>(layerProperties);

        writer.Line();
        writer.Line("/// <summary>");
        writer.Line($"/// The identity of {plan.ClassName}'s generated graph: changes whenever the model's code changes what the int8 layers");
        writer.Line("/// are or how they connect. <c>.qgen</c> files record it, so a file saved from another version is refused.");
        writer.Line("/// </summary>");
        writer.Line($"public const string GraphHash = {Names.Literal(hash)};");

        foreach (string name in PublicNames.Where(n => !taken.Contains(n)))
        {
            writer.Line();
            if (name == "Graph")
            {
                writer.Line("/// <summary>The int8 graph as the generator planned it: ops in forward order, the values between them, the user's members each op stands for.</summary>");
                writer.Line($"public {Names.Graphs}.ModelGraph Graph => this._graph;");
            }
            else
            {
                writer.Line("/// <summary>The int8 layers that exist, in forward order (their <c>Layer</c> names are the graph's node names).</summary>");
                writer.Line($"public global::System.Collections.Generic.IReadOnlyList<{Names.QuantizedLayer}> Layers => this._layers;");
            }
        }

        writer.Line();
        writer.Line($"{Names.Graphs}.ModelGraph {Names.QuantizedModel}.Graph => this._graph;");
        writer.Line();
        writer.Line($"global::System.Collections.Generic.IReadOnlyList<{Names.QuantizedLayer}> {Names.QuantizedModel}.Layers => this._layers;");
        writer.Line();
        writer.Line($"{Names.QuantizeInput} {Names.QuantizedModel}.Input => this.{Names.Identifier(entry.QuantizedProperty!)};");

        EmitSaveLoad(writer, plan);
        EmitCreateLayers(writer, plan);
        EmitCreateGraph(writer, plan);
    }

    private static void EmitSaveLoad(SourceWriter writer, ModelPlan plan)
    {
        List<StepPlan> islands = ObservedEmitter.IslandSteps(plan).ToList();
        string? refusal = islands.Count > 0
            ? $"{plan.ClassName}.{islands[0].Layer}: a [NoQuantize] float island runs a TorchSharp module; .qgen files hold int8 layers only."
            : UninferableCondition(plan);

        writer.Line();
        writer.Line("/// <summary>Writes the int8 model to a <c>.qgen</c> file (versioned, checksummed; see docs/model-file.md).</summary>");
        writer.Line("/// <param name=\"path\">The file to create or overwrite.</param>");
        writer.Line($"public void Save(string path) => {(refusal is null ? $"{Names.QGenFile}.Save(path, this)" : Refuse(refusal))};");
        writer.Line();
        writer.Line("/// <summary>Writes the int8 model in the <c>.qgen</c> format to a stream.</summary>");
        writer.Line("/// <param name=\"stream\">A writable stream.</param>");
        writer.Line($"public void Save(global::System.IO.Stream stream) => {(refusal is null ? $"{Names.QGenFile}.Save(stream, this)" : Refuse(refusal))};");

        foreach (string source in new[] { "path", "stream" })
        {
            writer.Line();
            writer.Line($"/// <summary>Reads an int8 model saved by <c>Save</c>; needs no TorchSharp or libtorch unless an op was kept in float.</summary>");
            writer.Line(source == "path"
                ? "/// <param name=\"path\">A <c>.qgen</c> file.</param>"
                : "/// <param name=\"stream\">A readable stream holding a <c>.qgen</c> file.</param>");
            writer.Line("/// <returns>The int8 model.</returns>");
            writer.Line($"/// <exception cref=\"global::System.IO.InvalidDataException\">The file is not a valid <c>.qgen</c> file of this version of {plan.ClassName} (the message says what is wrong).</exception>");
            writer.Line($"public static Quantized Load({(source == "path" ? "string" : "global::System.IO.Stream")} {source})");
            writer.Open();
            if (refusal is not null)
            {
                writer.Line(Refuse(refusal) + ";");
                writer.Close();
                continue;
            }

            writer.Line($"using var reader = {Names.QGenFile}.OpenRead({source}, {Names.Literal(plan.ClassName)}, GraphHash);");
            List<StepPlan> members = plan.Steps.Where(s => s.QuantizedProperty is not null).ToList();
            var arguments = new List<string>();
            var fallbacks = new Dictionary<string, string>(System.StringComparer.Ordinal);
            bool locals = plan.Conditions.Count > 0 || members.Any(ObservedEmitter.CanFallBack);
            for (int i = 0; i < members.Count; i++)
            {
                StepPlan step = members[i];
                string local = "layer" + i.ToString(CultureInfo.InvariantCulture);
                if (ObservedEmitter.CanFallBack(step))
                {
                    // Saved int8, or kept in float by the QConfigMapping (a float op record of the same name).
                    writer.Line($"var ({local}, float{i.ToString(CultureInfo.InvariantCulture)}) = reader.ReadInt8OrFloat<{LayerType(step)}>({Names.Literal(step.Layer)}, optional: {(step.Guard.Length > 0 ? "true" : "false")});");
                    arguments.Add(local);
                    fallbacks[step.QuantizedProperty!] = "float" + i.ToString(CultureInfo.InvariantCulture);
                    continue;
                }

                string read = $"reader.{(step.Guard.Length > 0 ? "ReadOptional" : "Read")}<{LayerType(step)}>({Names.Literal(step.Layer)})";
                if (locals)
                {
                    writer.Line($"var {local} = {read};");
                    arguments.Add(local);
                }
                else
                {
                    arguments.Add(read);
                }
            }

            // The fallback arguments follow the int8 ones in the constructor, in the order FallbackSteps gives them.
            List<string> orderedFallbacks = ObservedEmitter.FallbackSteps(plan)
                .Select(f => fallbacks[f.QuantizedProperty!])
                .ToList();

            // A construction-time condition is recorded by whether the layers it guards are in the file.
            List<string> conditions = plan.Conditions.Select(c => ConditionFromLayers(plan, c)!).ToList();
            writer.Line("return new Quantized(");
            WriteArguments(writer, arguments.Concat(orderedFallbacks).Concat(conditions).ToList());
            writer.Close();
        }
    }

    private static void WriteArguments(SourceWriter writer, IReadOnlyList<string> arguments)
    {
        using (writer.Indent())
        {
            for (int i = 0; i < arguments.Count; i++)
            {
                writer.Line(arguments[i] + (i == arguments.Count - 1 ? ");" : ","));
            }
        }
    }

    private static string Refuse(string message) => $"throw new global::System.NotSupportedException({Names.Literal(message)})";

    /// <summary>Null when every condition can be read back from which layers a file holds, else why not.</summary>
    private static string? UninferableCondition(ModelPlan plan)
    {
        foreach (ConditionPlan condition in plan.Conditions)
        {
            if (ConditionFromLayers(plan, condition) is null)
            {
                return $"{plan.ClassName}: the construction-time condition {condition.Comment} guards no int8 layer, so a .qgen file cannot record it.";
            }
        }

        return null;
    }

    /// <summary>C# (in Load, over the locals layer0..) that recovers a condition from a guarded layer's presence; null if none.</summary>
    private static string? ConditionFromLayers(ModelPlan plan, ConditionPlan condition)
    {
        List<StepPlan> members = plan.Steps.Where(s => s.QuantizedProperty is not null).ToList();
        for (int i = 0; i < members.Count; i++)
        {
            // A guarded op the mapping kept in float is present as its float op record instead.
            string index = i.ToString(CultureInfo.InvariantCulture);
            string present = ObservedEmitter.CanFallBack(members[i]) ? $"(layer{index} is not null || float{index} is not null)" : $"layer{index} is not null";
            if (members[i].Guard == "this." + condition.Field)
            {
                return present;
            }

            if (members[i].Guard == "!this." + condition.Field)
            {
                return $"!{present}";
            }
        }

        return null;
    }

    private static void EmitCreateLayers(SourceWriter writer, ModelPlan plan)
    {
        writer.Line();
        writer.Line("/// <summary>The layers that exist, in forward order (a float island is represented by the layer that quantizes its result).</summary>");
        writer.Line($"private global::System.Collections.Generic.IReadOnlyList<{Names.QuantizedLayer}> CreateLayers()");
        writer.Line("{");
        using (writer.Indent())
        {
            writer.Line($"var layers = new global::System.Collections.Generic.List<{Names.QuantizedLayer}>();");
            foreach (StepPlan step in plan.Steps.Where(s => s.QuantizedProperty is not null))
            {
                string property = "this." + Names.Identifier(step.Kind == StepKind.FloatIsland ? step.IslandQuantizer : step.QuantizedProperty!);
                if (ObservedEmitter.CanFallBack(step))
                {
                    string int8 = "this." + ObservedEmitter.Int8Field(step), fallback = "this." + ObservedEmitter.FallbackProperty(step);
                    writer.Line($"if ({int8} is not null) layers.Add({int8}); else if ({fallback} is not null) layers.Add({fallback});");
                    continue;
                }

                writer.Line(step.Guard.Length > 0
                    ? $"if ({property} is not null) layers.Add({property});"
                    : $"layers.Add({property});");
            }

            writer.Line("return layers.AsReadOnly();");
        }

        writer.Line("}");
    }

    private static void EmitCreateGraph(SourceWriter writer, ModelPlan plan)
    {
        writer.Line();
        writer.Line($"/// <summary>This instance's graph: the planned ops whose construction-time conditions hold, with source locations.</summary>");
        writer.Line($"private {Names.Graphs}.ModelGraph CreateGraph()");
        writer.Line("{");
        using (writer.Indent())
        {
            writer.Line($"var nodes = new global::System.Collections.Generic.List<{Names.Graphs}.GraphNode>();");
            var values = new Dictionary<int, string>();
            string G(int value) => values.TryGetValue(value, out string? expression) ? expression : Names.Literal(ValueName(value));
            foreach (StepPlan step in plan.Steps)
            {
                if (step.Kind == StepKind.Select)
                {
                    // Which value flows on is decided at construction, as in forward.
                    string local = "v" + step.Output.ToString(CultureInfo.InvariantCulture);
                    writer.Line($"string {local} = {step.Member} ? {G(step.Inputs[0])} : {G(step.Inputs[1])};");
                    values[step.Output] = local;
                    continue;
                }

                string? op = Op(step.Kind);
                if (op is null)
                {
                    continue;
                }

                IEnumerable<int> read = step.Inputs.Count > 0 ? step.Inputs : (IEnumerable<int>)new[] { step.Input };
                string inputs = step.Kind == StepKind.Quantize
                    ? Names.Literal("input")
                    : string.Join(", ", read.Select(G));
                string source = Source(step.Comments.Count > 0 ? step.Comments[0] : string.Empty);
                string members = string.Concat(Members(step, plan).Select(m =>
                    $", Member({Names.Literal(m.Path)}, {Names.Literal(m.Type)}, {Names.Literal(m.Source)})"));
                string opExpression = ObservedEmitter.CanFallBack(step)
                    ? $"this.{ObservedEmitter.FallbackProperty(step)} is null ? {Names.Graphs}.GraphOp.{op} : {Names.Graphs}.GraphOp.FloatIsland"
                    : $"{Names.Graphs}.GraphOp.{op}";
                string node = $"nodes.Add(Node({Names.Literal(step.Layer)}, {opExpression}, new string[] {{ {inputs} }}, {G(step.Output)}, {Names.Literal(source)}{members}));";
                writer.Line(step.Guard.Length > 0 ? $"if ({step.Guard}) {node}" : node);
            }

            writer.Line($"return new {Names.Graphs}.ModelGraph({Names.Literal(plan.ClassName)}, GraphHash, \"input\", {G(plan.Result)}, nodes);");
        }

        writer.Line("}");
        writer.Line();
        writer.Line($"private static {Names.Graphs}.GraphNode Node(string name, {Names.Graphs}.GraphOp op, string[] inputs, string output, string source, params {Names.Graphs}.GraphMember[] members) =>");
        writer.Line($"    new {Names.Graphs}.GraphNode(name, op, inputs, output, members, source);");
        writer.Line();
        writer.Line($"private static {Names.Graphs}.GraphMember Member(string path, string moduleType, string source) => new {Names.Graphs}.GraphMember(path, moduleType, source);");
    }

    /// <summary>The graph's name for a value: the quantized input is <c>q_input</c>, the others are the forward's locals.</summary>
    private static string ValueName(int value) => value == 0 ? "q_input" : "t" + value.ToString(CultureInfo.InvariantCulture);

    /// <summary>"Net.cs(29)" from a step comment "Net.cs(29): x = conv1.forward(x)".</summary>
    private static string Source(string comment)
    {
        int end = comment.IndexOf("): ", System.StringComparison.Ordinal);
        return end < 0 ? string.Empty : comment.Substring(0, end + 1);
    }

    private static IEnumerable<(string Path, string Type, string Source)> Members(StepPlan step, ModelPlan plan)
    {
        if (step.Kind == StepKind.Quantize && step.Member.Length == 0)
        {
            yield break;
        }

        string head = step.Kind switch
        {
            StepKind.Quantize => "QuantStub",
            StepKind.FloatIsland => ShortType(plan.Modules.First(m => m.Field == step.ModuleField).Type),
            _ => HeadType(step.Kind),
        };
        yield return (step.Member.Length > 0 ? step.Member : step.Layer, head, Source(step.Comments.Count > 0 ? step.Comments[0] : string.Empty));
        for (int i = 0; i < step.FusedMembers.Count; i++)
        {
            string member = step.FusedMembers[i];
            string type = member == step.BatchNormMember
                ? (step.Kind == StepKind.Linear ? "BatchNorm1d" : "BatchNorm2d")
                : "ReLU";
            string comment = i + 1 < step.Comments.Count ? step.Comments[i + 1] : step.Comments.Count > 0 ? step.Comments[0] : string.Empty;
            yield return (member, type, Source(comment));
        }
    }

    private static string ShortType(string type)
    {
        int dot = type.LastIndexOf('.');
        return dot < 0 ? type : type.Substring(dot + 1);
    }

    private static string HeadType(StepKind kind) => kind switch
    {
        StepKind.Conv2d => "Conv2d",
        StepKind.Linear => "Linear",
        StepKind.ConvTranspose2d => "ConvTranspose2d",
        StepKind.BatchNorm2d => "BatchNorm2d",
        StepKind.ReLU => "ReLU",
        StepKind.FunctionalRelu => "functional.relu",
        StepKind.Flatten => "Flatten",
        StepKind.FunctionalFlatten => "flatten",
        StepKind.Reshape => "reshape",
        StepKind.Add => "add",
        StepKind.Cat => "cat",
        StepKind.MaxPool2d => "MaxPool2d",
        StepKind.FunctionalMaxPool2d => "functional.max_pool2d",
        StepKind.AvgPool2d => "AvgPool2d",
        StepKind.AdaptiveAvgPool2d => "AdaptiveAvgPool2d",
        StepKind.Upsample => "Upsample",
        _ => kind.ToString(),
    };

    /// <summary>The GraphOp member of a step, or null for steps that are no op of the int8 graph.</summary>
    private static string? Op(StepKind kind) => kind switch
    {
        StepKind.Quantize => "Quantize",
        StepKind.Conv2d => "Conv2d",
        StepKind.ConvTranspose2d => "ConvTranspose2d",
        StepKind.Linear => "Linear",
        StepKind.BatchNorm2d => "BatchNorm2d",
        StepKind.ReLU or StepKind.FunctionalRelu => "ReLU",
        StepKind.Add => "Add",
        StepKind.Cat => "Cat",
        StepKind.MaxPool2d or StepKind.FunctionalMaxPool2d => "MaxPool2d",
        StepKind.AvgPool2d => "AvgPool2d",
        StepKind.AdaptiveAvgPool2d => "AdaptiveAvgPool2d",
        StepKind.Upsample => "UpsampleNearest2d",
        StepKind.Flatten or StepKind.FunctionalFlatten => "Flatten",
        StepKind.Reshape => "Reshape",
        StepKind.FloatIsland => "FloatIsland",
        _ => null,
    };

    /// <summary>The int8 layer class a step's Quantized property holds (a float island's quantizer for islands).</summary>
    internal static string LayerType(StepPlan step) => step.Kind switch
    {
        StepKind.Quantize => Names.QuantizeInput,
        StepKind.Conv2d => Names.QuantizedConv2d,
        StepKind.Linear => Names.QuantizedLinear,
        StepKind.ReLU or StepKind.FunctionalRelu => Names.QuantizedReLU,
        StepKind.Flatten or StepKind.FunctionalFlatten => Names.QuantizedFlatten,
        StepKind.ConvTranspose2d => Names.QuantizedConvTranspose2d,
        StepKind.BatchNorm2d => Names.QuantizedBatchNorm2d,
        StepKind.Reshape => Names.QuantizedReshape,
        StepKind.Add => Names.QuantizedAdd,
        StepKind.Cat => Names.QuantizedCat,
        StepKind.MaxPool2d or StepKind.FunctionalMaxPool2d => Names.QuantizedMaxPool2d,
        StepKind.AvgPool2d => Names.QuantizedAvgPool2d,
        StepKind.AdaptiveAvgPool2d => Names.QuantizedAdaptiveAvgPool2d,
        StepKind.Upsample => Names.QuantizedUpsampleNearest2d,
        StepKind.FloatIsland => Names.QuantizeInput,
        _ => throw new System.InvalidOperationException($"{step.Kind} has no int8 module."),
    };
}
