using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using QuantGen.Observers;

namespace QuantGen;

/// <summary>
/// Which qconfig each module gets, with PyTorch's priorities (<c>torch.ao.quantization.QConfigMapping</c>): a
/// member path beats a module type, which beats the global qconfig. A null qconfig keeps that module in float.
/// </summary>
/// <remarks>
/// <para>
/// Resolution follows <c>_maybe_adjust_qconfig_for_module_type_or_name</c> in PyTorch's
/// <c>torch/ao/quantization/fx/qconfig_mapping_utils.py</c>:
/// </para>
/// <list type="number">
/// <item><description>start from the qconfig set for the module's type, else the global one;</description></item>
/// <item><description>then look the module's path up among the member paths — the path itself, else its parent, its
/// parent's parent, ... up to (not including) the root (<c>_get_module_name_qconfig</c>); the first path found
/// wins, even over the type. So a qconfig set for "layer1" applies to "layer1.0.conv1" unless "layer1.0" or
/// "layer1.0.conv1" is set, and a path set to null keeps everything below it in float.</description></item>
/// </list>
/// <para>
/// For functional ops and method calls (<c>torch.add</c>, <c>x.flatten()</c>), PyTorch first takes the qconfig set for
/// the function ("add"), else the global one, then lets the type of the module the call is written in override it,
/// then the member paths of that module (<see cref="ResolveFunction"/>).
/// </para>
/// <para>
/// A fused op (conv+bn+relu, linear+relu, convtranspose+bn) is one module for this purpose: the path and type of
/// its first module (the conv) decide. PyTorch additionally raises a <c>LookupError</c> in
/// <c>_update_qconfig_for_fusion</c> when the object-type entries of the fused modules' types differ (say
/// "Conv2d" set but "ReLU" not); QuantGen does not reproduce that refusal.
/// </para>
/// <para>
/// Setting the same key twice replaces its qconfig but keeps its place, as PyTorch's ordered dictionaries do.
/// PyTorch's regex paths (<c>set_module_name_regex</c>) and call-order keys (<c>set_module_name_object_type_order</c>)
/// are not supported.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// QConfigMapping mapping = M.DefaultQConfigMapping()          // the class's attributes and backend preset
///     .SetModuleType(typeof(Linear), QConfig.X86 with { Activation = ObserverSpec.MinMax(reduceRange: true) })
///     .SetModuleName("head", null);                         // the member "head" (and all below it) stays float
/// M.Observed observed = model.Prepare(mapping);
/// </code>
/// </example>
public sealed partial class QConfigMapping
{
    private readonly List<KeyValuePair<string, QConfig?>> _moduleTypes = [];
    private readonly List<KeyValuePair<string, QConfig?>> _moduleNames = [];

    // Type entries put there by Default(backend) and not set since: PyTorch's presets for types a model need
    // not have, so Validate does not hold them against the model.
    private readonly HashSet<string> _presetTypes = new(StringComparer.Ordinal);

    /// <summary>A mapping whose global qconfig is <paramref name="global"/>.</summary>
    /// <param name="global">The qconfig of every module no type or path entry names; null keeps those in float.</param>
    public QConfigMapping(QConfig? global) => Global = global;

    /// <summary>An empty mapping (global qconfig null: nothing is quantized unless a type or path says so), as PyTorch's <c>QConfigMapping()</c>.</summary>
    public QConfigMapping()
        : this(null)
    {
    }

    /// <summary>
    /// PyTorch's <c>get_default_qconfig_mapping(backend)</c>, as far as QuantGen's ops go: the backend's default
    /// qconfig (<see cref="QConfig.For"/>) as global, and for ConvTranspose2d (module "ConvTranspose2d" and function
    /// "conv_transpose2d") the same activations with per-TENSOR symmetric qint8 MinMax weights on X86, because
    /// PyTorch's fbgemm/x86 engines do not support per-channel conv-transpose weights (pytorch/pytorch#47535);
    /// on Qnnpack the default qconfig is per tensor already. QuantGen's int8 conv-transpose does support
    /// per-channel weights on axis 1 — set them with <see cref="SetModuleType(string, QConfig?)"/>.
    /// </summary>
    /// <remarks>
    /// PyTorch's other entries are for ops QuantGen does not quantize (ConvTranspose1d/3d, LayerNorm, PReLU, the
    /// fixed-qparams ops sigmoid/tanh/hardsigmoid/softmax) or need no qconfig here ("reshape" reuses its input's
    /// qparams, which QuantGen's reshape does anyway), so they are left out.
    /// </remarks>
    public static QConfigMapping Default(QuantBackend backend)
    {
        QConfig global = QConfig.For(backend);
        QConfig transpose = backend == QuantBackend.X86
            ? global with { Weight = ObserverSpec.MinMax(QuantDType.QInt8, QScheme.PerTensorSymmetric) }
            : global;
        var mapping = new QConfigMapping(global)
            .SetModuleType("ConvTranspose2d", transpose)
            .SetModuleType("conv_transpose2d", transpose);
        mapping._presetTypes.UnionWith(["ConvTranspose2d", "conv_transpose2d"]);
        return mapping;
    }

    /// <summary>The global qconfig (null: nothing is quantized unless a type or path says so).</summary>
    public QConfig? Global { get; private set; }

    /// <summary>The module-type (and function-name) entries in the order they were first set; simple names.</summary>
    public IReadOnlyList<KeyValuePair<string, QConfig?>> ModuleTypes => _moduleTypes.AsReadOnly();

    /// <summary>The member-path entries in the order they were first set.</summary>
    public IReadOnlyList<KeyValuePair<string, QConfig?>> ModuleNames => _moduleNames.AsReadOnly();

    /// <summary>Sets the global qconfig.</summary>
    /// <param name="qconfig">The qconfig of every module no type or path entry names; null keeps those in float.</param>
    /// <returns>This mapping, for chaining.</returns>
    public QConfigMapping SetGlobal(QConfig? qconfig)
    {
        Global = qconfig;
        return this;
    }

    /// <summary>
    /// Sets the qconfig of every module of a type, by its simple or full name ("ConvTranspose2d" or
    /// "TorchSharp.Modules.ConvTranspose2d"; a full name is reduced to its simple name), or of a functional op
    /// by its PyTorch name ("add", "cat", "conv_transpose2d", "flatten").
    /// </summary>
    /// <param name="moduleType">The type's simple or full name, or a function name.</param>
    /// <param name="qconfig">Its qconfig; null keeps every such module in float.</param>
    /// <returns>This mapping, for chaining.</returns>
    /// <exception cref="ArgumentException">An empty name.</exception>
    public QConfigMapping SetModuleType(string moduleType, QConfig? qconfig)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(moduleType);
        string key = SimpleTypeName(moduleType);
        Set(_moduleTypes, key, qconfig);
        _presetTypes.Remove(key);
        return this;
    }

    /// <summary>Sets the qconfig of every module of <paramref name="moduleType"/> (matched by its simple name).</summary>
    /// <param name="moduleType">A module type, e.g. <c>typeof(ConvTranspose2d)</c>.</param>
    /// <param name="qconfig">Its qconfig; null keeps every such module in float.</param>
    /// <returns>This mapping, for chaining.</returns>
    public QConfigMapping SetModuleType(Type moduleType, QConfig? qconfig)
    {
        ArgumentNullException.ThrowIfNull(moduleType);
        return SetModuleType(moduleType.Name, qconfig);
    }

    /// <summary>Sets the qconfig of one member by path ("conv1", "layer1.0.conv2"); a path also covers the members below it.</summary>
    /// <param name="memberPath">The member's name or dotted path, as <c>named_modules()</c> lists it.</param>
    /// <param name="qconfig">Its qconfig; null keeps that member (and all below it) in float.</param>
    /// <returns>This mapping, for chaining.</returns>
    /// <exception cref="ArgumentException">An empty path (use <see cref="SetGlobal"/> for the whole model) or one with an empty segment ("layer1..conv").</exception>
    public QConfigMapping SetModuleName(string memberPath, QConfig? qconfig)
    {
        ArgumentNullException.ThrowIfNull(memberPath);
        if (memberPath.Length == 0)
        {
            throw new ArgumentException("QConfigMapping: the member path is empty; the whole model's qconfig is set with SetGlobal.", nameof(memberPath));
        }

        if (memberPath.Split('.').Any(segment => segment.Length == 0 || segment.Trim().Length != segment.Length))
        {
            throw new ArgumentException($"QConfigMapping: member path '{memberPath}' has an empty segment or surrounding spaces; write member names separated by single dots, e.g. \"layer1.0.conv1\".", nameof(memberPath));
        }

        Set(_moduleNames, memberPath, qconfig);
        return this;
    }

    /// <summary>
    /// The qconfig for the module at <paramref name="memberPath"/> of type <paramref name="moduleType"/>
    /// (simple name), or null for float. The longest matching path prefix wins, then the type, then global.
    /// </summary>
    /// <param name="memberPath">The module's path from the model ("layer1.0.conv1"); "" for the model itself.</param>
    /// <param name="moduleType">The module's type, simple or full name ("Conv2d").</param>
    public QConfig? Resolve(string memberPath, string moduleType)
    {
        ArgumentNullException.ThrowIfNull(memberPath);
        ArgumentNullException.ThrowIfNull(moduleType);
        QConfig? byType = TryGet(_moduleTypes, SimpleTypeName(moduleType), out QConfig? typeQConfig) ? typeQConfig : Global;
        return ResolvePath(memberPath, byType);
    }

    /// <summary>
    /// The qconfig of a functional op or method call (<c>torch.add</c>, <c>x.flatten()</c>) written in the
    /// <c>forward</c> of the module at <paramref name="scopePath"/>, as PyTorch resolves a <c>call_function</c>
    /// node: the function's entry ("add") else global, overridden by the entry for the scope module's type,
    /// overridden by the member paths of the scope (the scope itself, then its parents).
    /// </summary>
    /// <param name="scopePath">Path of the module whose forward contains the call ("" for the model, "layer1.0" in a block).</param>
    /// <param name="functionName">PyTorch's name of the op: "add", "cat", "relu", "flatten", "reshape", "conv_transpose2d".</param>
    /// <param name="scopeModuleType">The type of that module (simple or full name), e.g. "BasicBlock".</param>
    public QConfig? ResolveFunction(string scopePath, string functionName, string scopeModuleType)
    {
        ArgumentNullException.ThrowIfNull(scopePath);
        ArgumentNullException.ThrowIfNull(functionName);
        ArgumentNullException.ThrowIfNull(scopeModuleType);
        QConfig? qconfig = TryGet(_moduleTypes, SimpleTypeName(functionName), out QConfig? functionQConfig) ? functionQConfig : Global;
        if (TryGet(_moduleTypes, SimpleTypeName(scopeModuleType), out QConfig? scopeTypeQConfig))
        {
            qconfig = scopeTypeQConfig;
        }

        return ResolvePath(scopePath, qconfig);
    }

    /// <summary>
    /// Throws naming <paramref name="model"/> and the path when a member path or module type set here is not
    /// among <paramref name="knownPaths"/> / <paramref name="knownTypes"/> (a typo would otherwise be ignored),
    /// and checks every qconfig in the mapping (<see cref="QConfig.Validate"/>). The entries
    /// <see cref="Default"/> adds on its own (ConvTranspose2d) are PyTorch's presets for types a model need not
    /// have and are not held against it.
    /// </summary>
    /// <param name="model">The model's name, for the message.</param>
    /// <param name="knownPaths">Every module path of the model, containers included, as <c>named_modules()</c> lists them ("layer1", "layer1.0", "layer1.0.conv1").</param>
    /// <param name="knownTypes">The module types and function names the model uses (simple or full names).</param>
    /// <param name="allowDynamic">True for a model bound at Prepare, which runs a Linear with a <see cref="QConfig.IsDynamic"/> qconfig (int8 or float16) dynamically; other models refuse such a qconfig rather than quantize it statically.</param>
    /// <exception cref="ArgumentException">An unknown path or type (with a "did you mean" when one is close), or an invalid qconfig (naming its entry).</exception>
    public void Validate(string model, IReadOnlyCollection<string> knownPaths, IReadOnlyCollection<string> knownTypes, bool allowDynamic = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentNullException.ThrowIfNull(knownPaths);
        ArgumentNullException.ThrowIfNull(knownTypes);
        var paths = new HashSet<string>(knownPaths, StringComparer.Ordinal);
        var types = new HashSet<string>(knownTypes.Select(SimpleTypeName), StringComparer.Ordinal);
        foreach ((string path, _) in _moduleNames)
        {
            if (!paths.Contains(path))
            {
                throw new ArgumentException(
                    $"{model}: the QConfigMapping sets a qconfig for member path '{path}', but {model} has no module at that path.{DidYouMean(path, paths)} " +
                    $"Known paths: {Listing(paths)}.");
            }
        }

        foreach ((string type, _) in _moduleTypes)
        {
            if (!_presetTypes.Contains(type) && !types.Contains(type))
            {
                throw new ArgumentException(
                    $"{model}: the QConfigMapping sets a qconfig for module type '{type}', but {model} uses no module or op of that type.{DidYouMean(type, types)} " +
                    $"Known types: {Listing(types)}.");
            }
        }

        ValidateQConfig(model, "global", Global, allowDynamic);
        foreach ((string type, QConfig? qconfig) in _moduleTypes)
        {
            ValidateQConfig(model, $"module type '{type}'", qconfig, allowDynamic);
            if (qconfig is not null && qconfig.Weight.Scheme.IsPerChannel() && WeightOutputAxis(type) is int axis && qconfig.Weight.ChannelAxis != axis)
            {
                throw new ArgumentException(
                    $"{model}: the QConfigMapping's module type '{type}' qconfig has per-channel weights along ch_axis={qconfig.Weight.ChannelAxis}, but {type} weights hold their output channels on axis {axis}; " +
                    $"use ch_axis={axis} (one weight scale per output channel is what the int8 kernel requantizes with).");
            }
        }

        foreach ((string path, QConfig? qconfig) in _moduleNames)
        {
            ValidateQConfig(model, $"member path '{path}'", qconfig, allowDynamic);
        }
    }

    /// <summary>
    /// Throws when this mapping sets, by its exact path, a qconfig for <paramref name="member"/> — a module that was
    /// fused into (a ReLU) or folded into (a BatchNorm) the op at <paramref name="into"/> — that is null or differs
    /// from the qconfig the op resolves (<paramref name="intoQConfig"/>). A fused op is quantized as one, with its
    /// head's qconfig, so such an entry could only be ignored; PyTorch takes the head's qconfig too.
    /// </summary>
    /// <param name="model">The model's name, for the message.</param>
    /// <param name="member">Path of the fused or folded member ("relu", "layer1.0.bn1").</param>
    /// <param name="into">Path (layer name) of the op it runs in ("conv1").</param>
    /// <param name="intoQConfig">The qconfig resolved for that op (null: it stays in float).</param>
    /// <param name="folded">Whether the member is a BatchNorm folded into the op's weights (else fused).</param>
    /// <exception cref="ArgumentException">The entry for <paramref name="member"/> is null or differs from <paramref name="intoQConfig"/>.</exception>
    public void ValidateFused(string model, string member, string into, QConfig? intoQConfig, bool folded = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(member);
        ArgumentException.ThrowIfNullOrEmpty(into);
        if (!TryGet(_moduleNames, member, out QConfig? qconfig) || Equals(qconfig, intoQConfig))
        {
            return;
        }

        string how = folded ? "folded" : "fused";
        string what = qconfig is null
            ? "the QConfigMapping sets a null qconfig (keep in float) for it, but it has no op of its own to keep in float"
            : $"the QConfigMapping gives it a qconfig ({qconfig}) that differs from {into}'s ({(intoQConfig is null ? "null, float" : intoQConfig.ToString())}), but a {how} op is quantized as one with its head's qconfig";
        throw new ArgumentException(
            $"{model}.{member} is {how} into {model}.{into}; give the qconfig to {into}: {what}. " +
            $"Set it with SetModuleName(\"{into}\", ...) (null keeps the whole {how} op in float), or drop the entry for '{member}'.");
    }

    /// <summary>
    /// Throws when an entry of this mapping (by member path or module type) holds a qconfig whose backend is not
    /// <paramref name="backend"/>, the model's: a converted model runs one integer arithmetic (bias and
    /// requantization), so a per-module backend could not be honoured. The ConvTranspose2d presets
    /// <see cref="Default"/> adds on its own are not held against the model.
    /// </summary>
    /// <param name="model">The model's name, for the message.</param>
    /// <param name="backend">The model's backend: the global qconfig's, else the [Quantize] one.</param>
    /// <exception cref="ArgumentException">An entry with another backend (the message names it).</exception>
    public void ValidateBackend(string model, QuantBackend backend)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        foreach ((string entry, QConfig? qconfig) in _moduleNames.Select(e => ($"member path '{e.Key}'", e.Value))
            .Concat(_moduleTypes.Where(e => !_presetTypes.Contains(e.Key)).Select(e => ($"module type '{e.Key}'", e.Value))))
        {
            // Weight-only and float16 qconfigs have no integer arithmetic of their own (a table read in float, float32
            // arithmetic over float16 weights), so any backend goes.
            if (qconfig is not null && !qconfig.IsWeightOnly && !qconfig.IsFloat16 && qconfig.Backend != backend)
            {
                throw new ArgumentException(
                    $"{model}: the QConfigMapping's {entry} qconfig uses the {qconfig.Backend} backend, but the model's is {backend} (the global qconfig's, else [Quantize]'s); " +
                    $"a converted model runs one integer arithmetic, so give that entry a {backend} qconfig (QConfig.For(QuantBackend.{backend}) with your observers) or change the global qconfig.");
            }
        }
    }

    /// <summary>A copy that can be changed without changing this mapping (the qconfigs themselves are immutable records).</summary>
    public QConfigMapping Clone()
    {
        var copy = new QConfigMapping(Global);
        copy._moduleTypes.AddRange(_moduleTypes);
        copy._moduleNames.AddRange(_moduleNames);
        copy._presetTypes.UnionWith(_presetTypes);
        copy._fixedActivations.AddRange(_fixedActivations);
        copy._fixedWeights.AddRange(_fixedWeights);
        copy.FixedPointsMayBeAbsent = FixedPointsMayBeAbsent;
        return copy;
    }

    /// <summary>PyTorch-like listing of the entries, in the order of PyTorch's <c>QConfigMapping.__repr__</c>: global, object types, module names.</summary>
    public override string ToString()
    {
        var text = new StringBuilder("QConfigMapping (");
        text.Append("\n global_qconfig\n  ").Append(Describe(Global));
        AppendEntries(text, "object_type_qconfigs", _moduleTypes);
        AppendEntries(text, "module_name_qconfigs", _moduleNames);
        AppendFixedEntries(text);
        return text.Append("\n)").ToString();
    }

    private QConfig? ResolvePath(string memberPath, QConfig? fallback)
    {
        // _get_module_name_qconfig: the path itself, then each parent; the root ("") never matches.
        string path = memberPath;
        while (path.Length > 0)
        {
            if (TryGet(_moduleNames, path, out QConfig? byName))
            {
                return byName;
            }

            int dot = path.LastIndexOf('.');
            path = dot < 0 ? string.Empty : path[..dot];
        }

        return fallback;
    }

    /// <summary>The output-channel axis of a weighted module type's weight, or null for other types.</summary>
    private static int? WeightOutputAxis(string type) => type switch
    {
        "Conv2d" or "Linear" or "conv2d" or "linear" => 0,
        "ConvTranspose2d" or "conv_transpose2d" => 1,
        _ => null,
    };

    private static void ValidateQConfig(string model, string entry, QConfig? qconfig, bool allowDynamic)
    {
        if (qconfig is null)
        {
            return;
        }

        if ((qconfig.IsDynamic || qconfig.IsWeightOnly) && !allowDynamic)
        {
            string kind = qconfig.IsWeightOnly ? "weight-only" : qconfig.IsFloat16 ? "float16 dynamic" : "dynamic";
            throw new ArgumentException(
                $"{model}: the QConfigMapping's {entry} qconfig is {kind} ({qconfig}); {kind} quantization runs in models whose forward is bound at Prepare, " +
                "not yet in models traced at compile time, which would quantize the layer statically instead.");
        }

        try
        {
            qconfig.Validate();
        }
        catch (ArgumentException error)
        {
            throw new ArgumentException($"{model}: the QConfigMapping's {entry} qconfig is not usable: {error.Message}", error);
        }
    }

    private static void Set(List<KeyValuePair<string, QConfig?>> entries, string key, QConfig? qconfig)
    {
        int index = entries.FindIndex(entry => entry.Key == key);
        if (index >= 0)
        {
            entries[index] = new(key, qconfig);
        }
        else
        {
            entries.Add(new(key, qconfig));
        }
    }

    private static bool TryGet(List<KeyValuePair<string, QConfig?>> entries, string key, out QConfig? qconfig)
    {
        foreach ((string entryKey, QConfig? value) in entries)
        {
            if (entryKey == key)
            {
                qconfig = value;
                return true;
            }
        }

        qconfig = null;
        return false;
    }

    /// <summary>"TorchSharp.Modules.Conv2d" → "Conv2d"; nested types ("Outer+Inner") keep the innermost name.</summary>
    private static string SimpleTypeName(string name)
    {
        string trimmed = name.Trim();
        int cut = trimmed.LastIndexOfAny(['.', '+']);
        return cut < 0 ? trimmed : trimmed[(cut + 1)..];
    }

    private static void AppendEntries(StringBuilder text, string title, List<KeyValuePair<string, QConfig?>> entries)
    {
        text.Append("\n ").Append(title);
        if (entries.Count == 0)
        {
            text.Append("\n  OrderedDict()");
            return;
        }

        foreach ((string key, QConfig? qconfig) in entries)
        {
            text.Append("\n  ").Append(key).Append(": ").Append(Describe(qconfig));
        }
    }

    private static string Describe(QConfig? qconfig) => qconfig?.ToString() ?? "None";

    private static string Listing(IEnumerable<string> names)
    {
        string[] sorted = names.Where(n => n.Length > 0).OrderBy(n => n, StringComparer.Ordinal).ToArray();
        if (sorted.Length == 0)
        {
            return "(none)";
        }

        const int shown = 20;
        string list = string.Join(", ", sorted.Take(shown).Select(n => $"'{n}'"));
        return sorted.Length > shown ? $"{list}, ... ({sorted.Length} in all)" : list;
    }

    /// <summary>" Did you mean 'conv1'?" for the closest known name within a small edit distance, else "".</summary>
    private static string DidYouMean(string name, IEnumerable<string> known)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string candidate in known)
        {
            if (candidate.Length == 0)
            {
                continue;
            }

            int distance = string.Equals(candidate, name, StringComparison.OrdinalIgnoreCase)
                ? 0
                : EditDistance(name.ToLowerInvariant(), candidate.ToLowerInvariant());
            if (distance < bestDistance || (distance == bestDistance && string.CompareOrdinal(candidate, best) < 0))
            {
                best = candidate;
                bestDistance = distance;
            }
        }

        // Close means at most a third of the name's characters edited (at least 1, at most 3).
        int limit = Math.Clamp(name.Length / 3, 1, 3);
        return best is not null && bestDistance <= limit ? $" Did you mean '{best}'?" : string.Empty;
    }

    private static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
