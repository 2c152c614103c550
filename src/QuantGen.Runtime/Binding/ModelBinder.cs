using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Reflection;
using QuantGen.Graphs;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantGen.Binding;

/// <summary>
/// Binds a captured forward to a running model, as PyTorch FX binds <c>call_module</c> nodes: each module call
/// is resolved to the module the instance holds (its runtime type decides the op), containers are unrolled
/// from the instance (Sequential in order, recursively; a loop over a ModuleList or Sequential once per child),
/// captured user modules are inlined, construction-time conditions are decided, and fusions are applied.
/// </summary>
public static class ModelBinder
{
    /// <summary>
    /// TorchSharp modules that apply one float function to each element independently, with nothing learned per
    /// channel: they run in int8 as a 256-entry table (<see cref="Modules.QuantizedElementwise"/>).
    /// </summary>
    private static readonly HashSet<string> ElementwiseModules = new(StringComparer.Ordinal)
    {
        "LeakyReLU", "Hardswish", "Hardsigmoid", "SiLU", "Sigmoid", "Tanh", "ELU", "CELU", "SELU", "GELU", "Mish",
        "Softplus", "Softsign", "Tanhshrink", "Hardshrink", "Softshrink", "LogSigmoid", "Threshold",
    };

    /// <summary>How deeply modules may nest; deeper (or a module that contains itself) is refused.</summary>
    public const int MaxDepth = 64;

    /// <summary>Binds <paramref name="forward"/> to <paramref name="model"/> and fuses what the graph allows.</summary>
    /// <param name="model">The running model.</param>
    /// <param name="modelName">Its name, for layer names in messages.</param>
    /// <param name="forward">The model class's captured forward.</param>
    /// <param name="autoFuse">Fuse conv-bn(-relu), conv-relu, linear-relu, bn-relu and add-relu.</param>
    /// <returns>The bound graph.</returns>
    /// <exception cref="InvalidOperationException">A call cannot be bound (the message names model, path, type and what was expected).</exception>
    public static BoundGraph Bind(nn.Module model, string modelName, CapturedForward forward, bool autoFuse = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(forward);
        var binder = new Binder(modelName);
        int result = binder.Inline(model, forward, string.Empty, [0], 0);
        BoundOp[] ops = binder.Ops.ToArray();
        if (autoFuse)
        {
            ops = Fuse(ops, result);
        }

        return new BoundGraph(modelName, ops, binder.ValueCount, result);
    }

    private sealed class Binder(string modelName)
    {
        private readonly Dictionary<string, int> _names = new(StringComparer.Ordinal);
        private readonly Dictionary<(nn.Module Module, string Inputs), TupleModuleCall> _tupleCalls = new();

        public List<BoundOp> Ops { get; } = new();

        public int ValueCount { get; private set; } = 1;

        /// <summary>
        /// Inlines a captured forward of <paramref name="module"/> at <paramref name="path"/> on <paramref name="arguments"/>
        /// (the value each of its tensor parameters receives); returns its result value.
        /// </summary>
        public int Inline(nn.Module module, CapturedForward forward, string path, int[] arguments, int depth)
        {
            if (arguments.Length != forward.ParameterCount)
            {
                throw new InvalidOperationException($"{modelName}{(path.Length == 0 ? "" : "." + path)}: {forward.ModuleType.Name}.forward takes {forward.ParameterCount} tensors; the call passes {arguments.Length}.");
            }

            var values = new int[forward.Nodes.Count + 1];
            values[0] = arguments[0];
            bool[] conditions = forward.Conditions.Select(c => Decide(module, c, path)).ToArray();
            for (int i = 0; i < forward.Nodes.Count; i++)
            {
                CapturedNode node = forward.Nodes[i];
                if (node.Op != CapturedOp.Select && node.Condition >= 0 && conditions[node.Condition] == node.Negated)
                {
                    values[i + 1] = -1;
                    continue;
                }

                int[] inputs = node.Inputs.Select(v => values[v]).ToArray();
                if (node.Op != CapturedOp.Select && inputs.Any(v => v < 0))
                {
                    throw new InvalidOperationException($"{Where(path, node)}: reads a value its construction-time condition did not compute ('{node.Text}').");
                }

                values[i + 1] = node.Op switch
                {
                    CapturedOp.Parameter => arguments[node.Ints![0]],
                    CapturedOp.Call when node.Ints is { Length: > 0 } slots => CallWithArguments(module, forward, node, path, inputs, slots, depth),
                    CapturedOp.Call => CallMember(module, forward, node, path, inputs[0], depth),
                    CapturedOp.Loop when node.Ints is { Length: > 0 } slots => LoopWithArguments(module, forward, node, path, inputs, slots, depth),
                    CapturedOp.CallItem => CallItem(module, forward, node, path, inputs),
                    CapturedOp.Loop => Loop(module, node, path, inputs[0], depth),
                    CapturedOp.Select => conditions[node.Condition] ? inputs[0] : inputs[1],
                    CapturedOp.Identity => inputs[0],
                    CapturedOp.Add => Add(BoundKind.Add, Scoped(path, "add"), inputs, node, "add"),
                    CapturedOp.Relu => Add(BoundKind.ReLU, Scoped(path, "relu"), inputs, node, "relu"),
                    CapturedOp.Cat => Add(BoundKind.Cat, Scoped(path, "cat"), inputs, node, "cat", node.Ints),
                    CapturedOp.Flatten => Add(BoundKind.Flatten, Scoped(path, "flatten"), inputs, node, "flatten", node.Ints),
                    CapturedOp.Reshape => Add(BoundKind.Reshape, Scoped(path, "reshape"), inputs, node, "reshape", node.Ints),
                    CapturedOp.Hardtanh => Add(BoundKind.Hardtanh, Scoped(path, "hardtanh"), inputs, node, "hardtanh", floats: node.Floats),
                    CapturedOp.AdaptiveAvgPool2d => Add(BoundKind.AdaptiveAvgPool2d, Scoped(path, "adaptive_avg_pool2d"), inputs, node, "adaptive_avg_pool2d", node.Ints),
                    CapturedOp.Mul => Add(BoundKind.Mul, Scoped(path, "mul"), inputs, node, "mul"),
                    CapturedOp.MulConstant => Add(BoundKind.MulConstant, Scoped(path, "mul_scalar"), inputs, node, "mul_scalar", floats: node.Floats),
                    CapturedOp.AddConstant => Add(BoundKind.AddConstant, Scoped(path, "add_scalar"), inputs, node, "add_scalar", floats: node.Floats),
                    CapturedOp.Mean => Add(BoundKind.Mean, Scoped(path, "mean"), inputs, node, "mean", node.Ints),
                    CapturedOp.Float => AddFloatFunction(module, path, inputs, node, forward, i),
                    _ => throw new InvalidOperationException($"{Where(path, node)}: unknown captured op {node.Op}."),
                };
            }

            int result = values[forward.Result];
            if (result < 0)
            {
                throw new InvalidOperationException($"{modelName}{(path.Length == 0 ? "" : "." + path)}: forward returns a value its construction-time conditions did not compute.");
            }

            return result;
        }

        private int CallMember(nn.Module owner, CapturedForward forward, CapturedNode node, string path, int input, int depth)
        {
            nn.Module child = MemberModule(owner, node, path);
            string childPath = Join(path, ChildName(owner, child, node.Member));
            if (forward.NoQuantize.Contains(node.Member))
            {
                return AddFloatModule(child, childPath, input, node, "[NoQuantize]");
            }

            return BindModule(child, childPath, input, node, depth + 1);
        }

        /// <summary>
        /// One element of an LSTM/GRU/RNN or MultiheadAttention call: a float op (dynamic int8 at Convert when its qconfig says
        /// so). Ints are [element, element count], then, for a call written with all its arguments, the call's slots.
        /// </summary>
        private int CallItem(nn.Module owner, CapturedForward forward, CapturedNode node, string path, int[] inputs)
        {
            nn.Module child = MemberModule(owner, node, path);
            string childPath = Join(path, ChildName(owner, child, node.Member));
            int[]? slots = node.Ints!.Length > 2 ? node.Ints[2..] : null;
            string key = string.Join(",", inputs) + "|" + string.Join(",", slots ?? Array.Empty<int>());
            if (!_tupleCalls.TryGetValue((child, key), out TupleModuleCall? call))
            {
                call = TupleModuleCall.Create(child, slots)
                    ?? throw new InvalidOperationException(slots is null || child is not MultiheadAttention
                        ? $"{Where(path, node)}: '{node.Text}' takes apart what {node.Member} returns, but it holds a {child.GetType().Name}{(slots is null ? "" : $" called with {slots.Length} arguments")}; QuantGen runs the tuple-returning calls of LSTM, GRU, RNN and MultiheadAttention modules (a module of yours returning a tuple is not captured yet)."
                        : $"{Where(path, node)}: '{node.Text}' calls the MultiheadAttention {node.Member} with arguments QuantGen does not take apart: query, key and value must be tensors, the masks tensors or null, and need_weights a constant.");
                if (Array.IndexOf(call.InputCounts, inputs.Length) < 0)
                {
                    throw new InvalidOperationException(call.Slots is not null
                        ? $"{Where(path, node)}: '{node.Text}' gives {node.Member} {inputs.Length} tensors, but its arguments name {call.InputCounts[0]}."
                        : $"{Where(path, node)}: '{node.Text}' gives {node.Member}, a {call.TypeName}, {inputs.Length - 1} initial-state tensor(s); a {call.TypeName} takes {(call.TypeName == "LSTM" ? "(h0, c0)" : "h0")}.");
                }

                _tupleCalls[(child, key)] = call;
            }

            int item = node.Ints![0];
            if (item < 0 || item >= call.Outputs.Length || node.Ints[1] != call.Outputs.Length)
            {
                throw new InvalidOperationException($"{Where(path, node)}: '{node.Text}' reads element {item + 1} of {node.Ints[1]}, but a {call.TypeName} returns {call.Outputs.Length} tensors ({string.Join(", ", call.Outputs)}).");
            }

            if (call.Slots is { } written && item == 1 && written[4] == ArgumentsCall.ConstantFalse)
            {
                // TorchSharp returns no tensor there (an empty handle): reading it would fail in the float model too.
                throw new InvalidOperationException($"{Where(path, node)}: '{node.Text}' reads the attention weights of {node.Member}, but the call passes need_weights: false, so MultiheadAttention returns none; pass need_weights: true or discard the second element.");
            }

            string name = Unique(item == 0 ? childPath : childPath + "." + call.Outputs[item]);
            string reason = forward.NoQuantize.Contains(node.Member)
                ? "[NoQuantize]"
                : call.TypeName is "LSTM" or "GRU"
                    ? $"QuantGen has no static int8 op for {call.TypeName} (QConfig.Dynamic() makes it a dynamic int8 {call.TypeName})"
                    : call.TypeName is "MultiheadAttention"
                        ? "QuantGen has no static int8 op for MultiheadAttention (QConfig.Dynamic() gives it dynamic int8 projections)"
                        : $"QuantGen has no int8 op for {call.TypeName}";
            var op = new BoundOp(BoundKind.FloatModule, name, inputs, ValueCount++, node.Source, node.Text)
            {
                Module = child,
                TypeName = call.TypeName,
                FloatReason = reason,
                Ints = new[] { item },
                Function = a => call.Run(a)[item],
                TupleCall = call,
            };
            op.Members.Add(new GraphMember(childPath, call.TypeName, node.Source));
            Ops.Add(op);
            return op.Output;
        }

        /// <summary>
        /// A module call with several tensor arguments (<c>layer.call(x, null, padding)</c>): one float op reading the tensors
        /// given (a TransformerEncoderLayer becomes dynamic int8 at Convert when its qconfig says so); Ints are the call's
        /// slots, as the generator wrote them.
        /// </summary>
        private int CallWithArguments(nn.Module owner, CapturedForward forward, CapturedNode node, string path, int[] inputs, int[] slots, int depth)
        {
            nn.Module child = MemberModule(owner, node, path);
            string childPath = Join(path, ChildName(owner, child, node.Member));
            return AddArgumentsCall(child, childPath, inputs, slots, node, forward.NoQuantize.Contains(node.Member), depth + 1);
        }

        /// <summary><c>foreach (var layer in layers) x = layer.call(x, null, padding);</c>: each child in turn, the further arguments the same.</summary>
        private int LoopWithArguments(nn.Module owner, CapturedForward forward, CapturedNode node, string path, int[] inputs, int[] slots, int depth)
        {
            object? value = MemberValue(owner, node.Member);
            if (value is not nn.Module container)
            {
                throw new InvalidOperationException($"{Where(path, node)}: '{node.Text}' loops over {node.Member}, which is {(value is null ? "null" : "a " + value.GetType().Name)}; expected a ModuleList or Sequential of modules.");
            }

            string containerPath = Join(path, ChildName(owner, container, node.Member));
            int[] arguments = (int[])inputs.Clone();
            foreach ((string name, nn.Module child) in container.named_children())
            {
                arguments[0] = AddArgumentsCall(child, Join(containerPath, name), arguments, slots, node, forward.NoQuantize.Contains(node.Member), depth + 1);
            }

            return arguments[0];
        }

        private int AddArgumentsCall(nn.Module module, string path, int[] inputs, int[] slots, CapturedNode node, bool noQuantize, int depth)
        {
            // A user module of several tensors whose forward was captured (a UNet's up-sampling stage, forward(x, skip)) is
            // inlined as a one-tensor module is: its convolutions become int8 ops. A null argument leaves it whole, in float.
            if (!noQuantize && CapturedModules.Find(module.GetType()) is { } captured && captured.ParameterCount == slots.Length && Array.TrueForAll(slots, s => s >= 0))
            {
                if (depth > MaxDepth)
                {
                    throw new InvalidOperationException($"{modelName}.{path}: modules nest more than {MaxDepth} deep (does a module contain itself?).");
                }

                return Inline(module, captured, path, Array.ConvertAll(slots, s => inputs[s]), depth);
            }

            Func<Tensor[], Tensor> call = ArgumentsCall.Create(module, slots)
                ?? throw new InvalidOperationException($"{modelName}.{path}: '{node.Text}' ({node.Source}) calls a {module.GetType().Name} with {slots.Length} arguments, but it is not a nn.IModule of {slots.Length} tensors returning a tensor.");
            string typeName = module.GetType().Name;
            string reason = noQuantize
                ? "[NoQuantize]"
                : module is TransformerEncoderLayer or TransformerEncoder
                    ? $"QuantGen has no static int8 op for {typeName} (QConfig.Dynamic() gives it dynamic int8 projections)"
                    : CapturedModules.Find(module.GetType()) is not null
                        ? $"the call passes null for a tensor its captured forward reads, so it runs whole, in float"
                        : $"QuantGen has no int8 op for {typeName} called with {slots.Length} arguments";
            var op = new BoundOp(BoundKind.FloatModule, Unique(path), (int[])inputs.Clone(), ValueCount++, node.Source, node.Text)
            {
                Module = module,
                TypeName = typeName,
                FloatReason = reason,
                Ints = (int[])slots.Clone(),
                Function = call,
            };
            op.Members.Add(new GraphMember(path, typeName, node.Source));
            Ops.Add(op);
            return op.Output;
        }

        /// <summary>The module the called member holds in this instance.</summary>
        private nn.Module MemberModule(nn.Module owner, CapturedNode node, string path)
        {
            object? value = MemberValue(owner, node.Member);
            return value as nn.Module ?? throw new InvalidOperationException(value is null
                ? $"{Where(path, node)}: '{node.Text}' calls {node.Member}, which is null in this instance; guard the call with 'if ({node.Member} is not null)' or assign a module in the constructor."
                : $"{Where(path, node)}: {node.Member} holds a {value.GetType().Name}, not a TorchSharp module.");
        }

        private int Loop(nn.Module owner, CapturedNode node, string path, int input, int depth)
        {
            object? value = MemberValue(owner, node.Member);
            if (value is not nn.Module container)
            {
                throw new InvalidOperationException($"{Where(path, node)}: '{node.Text}' loops over {node.Member}, which is {(value is null ? "null" : "a " + value.GetType().Name)}; expected a ModuleList or Sequential of modules.");
            }

            string containerPath = Join(path, ChildName(owner, container, node.Member));
            foreach ((string name, nn.Module child) in container.named_children())
            {
                input = BindModule(child, Join(containerPath, name), input, node, depth + 1);
            }

            return input;
        }

        /// <summary>Binds one module call by the module's runtime type.</summary>
        private int BindModule(nn.Module module, string path, int input, CapturedNode node, int depth)
        {
            if (depth > MaxDepth)
            {
                throw new InvalidOperationException($"{modelName}.{path}: modules nest more than {MaxDepth} deep (does a module contain itself?).");
            }

            if (CapturedModules.Find(module.GetType()) is { } captured)
            {
                if (captured.ParameterCount != 1)
                {
                    throw new InvalidOperationException($"{modelName}.{path}: {module.GetType().Name}.forward takes {captured.ParameterCount} tensors, and '{node.Text}' ({node.Source}) passes one.");
                }

                return Inline(module, captured, path, [input], depth);
            }

            switch (module)
            {
                case Sequential sequential:
                    foreach ((string name, nn.Module child) in sequential.named_children())
                    {
                        input = BindModule(child, Join(path, name), input, node, depth + 1);
                    }

                    return input;
                case TransformerEncoderLayer or TransformerEncoder:
                    // One float op through nn.IModule (a TransformerEncoder is not a Module<Tensor, Tensor>): dynamic
                    // int8 projections at Convert when its qconfig says so, as when called with its masks.
                    return AddArgumentsCall(module, path, new[] { input }, new[] { 0 }, node, noQuantize: false, depth);
                case Identity or Dropout or Dropout2d or Dropout1d or AlphaDropout or FeatureAlphaDropout:
                    // Identity in eval, as PyTorch's convert treats dropout.
                    return input;
                case Conv2d:
                    return AddModule(BoundKind.Conv2d, module, path, input, node, "Conv2d");
                case Linear:
                    return AddModule(BoundKind.Linear, module, path, input, node, "Linear");
                case ConvTranspose2d:
                    return AddModule(BoundKind.ConvTranspose2d, module, path, input, node, "ConvTranspose2d");
                case BatchNorm2d:
                    return AddModule(BoundKind.BatchNorm2d, module, path, input, node, "BatchNorm2d");
                case ReLU:
                    return AddModule(BoundKind.ReLU, module, path, input, node, "ReLU");
                case ReLU6:
                    return AddModule(BoundKind.Hardtanh, module, path, input, node, "ReLU6", new[] { 0f, 6f });
                case Hardtanh hardtanh:
                    return AddModule(BoundKind.Hardtanh, module, path, input, node, "Hardtanh", new[] { (float)hardtanh.min_val, (float)hardtanh.max_val });
                case MaxPool2d:
                    return AddModule(BoundKind.MaxPool2d, module, path, input, node, "MaxPool2d");
                case AvgPool2d:
                    return AddModule(BoundKind.AvgPool2d, module, path, input, node, "AvgPool2d");
                case AdaptiveAvgPool2d:
                    return AddModule(BoundKind.AdaptiveAvgPool2d, module, path, input, node, "AdaptiveAvgPool2d");
                case nn.Module<Tensor, Tensor> unary when ElementwiseModules.Contains(module.GetType().Name) && module.GetType().Namespace == "TorchSharp.Modules":
                    return AddModule(BoundKind.Elementwise, unary, path, input, node, module.GetType().Name);
                case Flatten flatten:
                    return AddModule(BoundKind.Flatten, module, path, input, node, "Flatten", ints: new[] { checked((int)flatten.start_dim), checked((int)flatten.end_dim) });

                default:
                    string reason = CapturedModules.WhyNotCaptured(module.GetType()) is { } why
                        ? $"its forward could not be captured ({why})"
                        : module is nn.Module<Tensor, Tensor>
                            ? $"QuantGen has no int8 op for {module.GetType().Name}"
                            : $"{module.GetType().Name} is not a nn.Module<Tensor, Tensor>";
                    if (module is not nn.Module<Tensor, Tensor> && module is nn.IModule<Tensor, Tensor>)
                    {
                        // Takes one tensor through its interface only (a module whose base takes more): called as written.
                        return AddArgumentsCall(module, path, new[] { input }, new[] { 0 }, node, noQuantize: false, depth);
                    }

                    if (module is not nn.Module<Tensor, Tensor>)
                    {
                        throw new InvalidOperationException($"{modelName}.{path}: '{node.Text}' ({node.Source}) calls a {module.GetType().Name} with one tensor, but it does not take one tensor (expected a nn.Module<Tensor, Tensor>).");
                    }

                    return AddFloatModule(module, path, input, node, reason);
            }
        }

        private int AddModule(BoundKind kind, nn.Module module, string path, int input, CapturedNode node, string typeName, float[]? floats = null, int[]? ints = null)
        {
            string name = Unique(path);
            var op = new BoundOp(kind, name, new[] { input }, ValueCount++, node.Source, node.Text) { Module = module, TypeName = typeName, Floats = floats ?? Array.Empty<float>(), Ints = ints ?? Array.Empty<int>() };
            op.Members.Add(new GraphMember(path, typeName, node.Source));
            Ops.Add(op);
            return op.Output;
        }

        private int AddFloatModule(nn.Module module, string path, int input, CapturedNode node, string reason)
        {
            string typeName = module.GetType().Name;
            string name = Unique(path);
            var op = new BoundOp(BoundKind.FloatModule, name, new[] { input }, ValueCount++, node.Source, node.Text) { Module = module, TypeName = typeName, FloatReason = reason };
            op.Members.Add(new GraphMember(path, typeName, node.Source));
            Ops.Add(op);
            return op.Output;
        }

        private int Add(BoundKind kind, string name, int[] inputs, CapturedNode node, string typeName, int[]? ints = null, float[]? floats = null)
        {
            name = Unique(name);
            var op = new BoundOp(kind, name, inputs, ValueCount++, node.Source, node.Text) { TypeName = typeName, Ints = ints ?? Array.Empty<int>(), Floats = floats ?? Array.Empty<float>() };
            op.Members.Add(new GraphMember(name, typeName, node.Source));
            Ops.Add(op);
            return op.Output;
        }

        private int AddFloatFunction(nn.Module module, string path, int[] inputs, CapturedNode node, CapturedForward owner, int index)
        {
            string name = Unique(Scoped(path, "float"));
            double[] scalars = ScalarValues(module, path, node);
            Func<Tensor[], Tensor> function = node.FloatOf is { } floatOf
                ? a => floatOf(a, scalars)
                : node.Float ?? throw new InvalidOperationException($"{Where(path, node)}: a float node has no function.");
            var op = new BoundOp(BoundKind.FloatFunction, name, inputs, ValueCount++, node.Source, node.Text)
            {
                Function = function,
                ScalarValues = scalars,
                FunctionOwner = owner,
                FunctionNode = index,
                TypeName = "function",
                FloatReason = $"no int8 op for '{node.Text}'",
            };
            op.Members.Add(new GraphMember(name, "function", node.Source));
            Ops.Add(op);
            return op.Output;
        }

        /// <summary>
        /// The number and bool members a float expression reads, from this instance, read once (as the construction-time
        /// conditions are): what FX's tracing would see at prepare.
        /// </summary>
        private double[] ScalarValues(nn.Module module, string path, CapturedNode node)
        {
            string[] members = node.Scalars ?? Array.Empty<string>();
            var values = new double[members.Length];
            for (int k = 0; k < members.Length; k++)
            {
                object? value = MemberValue(module, members[k]);
                values[k] = value switch
                {
                    bool flag => flag ? 1 : 0,
                    int or long or float or double => Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture),
                    _ => throw new InvalidOperationException($"{Where(path, node)}: '{node.Text}' reads {members[k]}, which holds {value?.GetType().Name ?? "null"}, not a number or bool."),
                };
            }

            return values;
        }

        /// <summary>A layer name not used yet: a module called twice (a shared ReLU) gets "relu", "relu_1", ...</summary>
        private string Unique(string name)
        {
            if (_names.TryGetValue(name, out int count))
            {
                _names[name] = count + 1;
                return Unique(name + "_" + count.ToString(CultureInfo.InvariantCulture));
            }

            _names[name] = 1;
            return name;
        }

        private bool Decide(nn.Module module, CapturedCondition condition, string path) => condition.Kind switch
        {
            CapturedConditionKind.Constant => condition.Constant,
            CapturedConditionKind.MemberIsNull => MemberValue(module, condition.Member) is null,
            CapturedConditionKind.MemberIsNotNull => MemberValue(module, condition.Member) is not null,
            CapturedConditionKind.BoolMember => MemberValue(module, condition.Member) is bool value
                ? value
                : throw new InvalidOperationException($"{modelName}{(path.Length == 0 ? "" : "." + path)}: the condition '{condition.Text}' reads {condition.Member}, which is not a bool member of {module.GetType().Name}."),
            _ => throw new InvalidOperationException($"unknown condition kind {condition.Kind}"),
        };

        private string Where(string path, CapturedNode node) =>
            $"{modelName}{(path.Length == 0 ? "" : "." + path)} ({node.Source})";

        private static string Scoped(string path, string name) => Join(path, name);

        private static string Join(string path, string name) => path.Length == 0 ? name : path + "." + name;
    }

    /// <summary>The name the module is registered under in its owner (PyTorch's path element), else the member's name.</summary>
    private static string ChildName(nn.Module owner, nn.Module child, string member)
    {
        foreach ((string name, nn.Module registered) in owner.named_children())
        {
            if (ReferenceEquals(registered, child))
            {
                return name;
            }
        }

        return member;
    }

    /// <summary>A field or property of <paramref name="owner"/> (any accessibility, declared on its class or a base).</summary>
    internal static object? MemberValue(object owner, string member)
    {
        const BindingFlags flags = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        for (Type? type = owner.GetType(); type is not null; type = type.BaseType)
        {
            if (type.GetField(member, flags) is { } field)
            {
                return field.GetValue(owner);
            }

            if (type.GetProperty(member, flags) is { GetMethod: not null } property && property.GetIndexParameters().Length == 0)
            {
                return property.GetValue(owner);
            }
        }

        throw new InvalidOperationException($"{owner.GetType().Name} has no field or property '{member}'.");
    }

    /// <summary>
    /// FX's fusion patterns on the bound graph: Conv2d→BatchNorm2d(→ReLU), Conv2d→ReLU, Linear→ReLU,
    /// BatchNorm2d→ReLU, add→ReLU — where each intermediate value has exactly one reader and is not the result.
    /// </summary>
    private static BoundOp[] Fuse(BoundOp[] ops, int result)
    {
        var readers = new Dictionary<int, List<BoundOp>>();
        foreach (BoundOp op in ops)
        {
            foreach (int input in op.Inputs)
            {
                if (!readers.TryGetValue(input, out List<BoundOp>? list))
                {
                    readers[input] = list = new List<BoundOp>();
                }

                list.Add(op);
            }
        }

        BoundOp? SoleReader(BoundOp op, BoundKind kind) =>
            op.Output != result && readers.TryGetValue(op.Output, out List<BoundOp>? list) && list.Count == 1 && list[0].Kind == kind && list[0].Inputs.Length == 1
                ? list[0]
                : null;

        var absorbed = new HashSet<BoundOp>();
        foreach (BoundOp op in ops)
        {
            if (absorbed.Contains(op))
            {
                continue;
            }

            if (op.Kind is BoundKind.Conv2d or BoundKind.ConvTranspose2d && SoleReader(op, BoundKind.BatchNorm2d) is { } bn)
            {
                op.FusedBatchNorm = (bn.Name, bn.Module!);
                op.Members.AddRange(bn.Members);
                op.Output = bn.Output;
                absorbed.Add(bn);
            }

            if (op.Kind is BoundKind.Conv2d or BoundKind.ConvTranspose2d or BoundKind.Linear or BoundKind.BatchNorm2d or BoundKind.Add && SoleReader(op, BoundKind.ReLU) is { } relu)
            {
                op.FusedRelu = relu.Name;
                op.Members.AddRange(relu.Members);
                op.Output = relu.Output;
                absorbed.Add(relu);
            }
        }

        return ops.Where(o => !absorbed.Contains(o)).ToArray();
    }
}
