using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using QuantGen.Generator.Diagnostics;
using QuantGen.Generator.Emitting;
using QuantGen.Generator.Parsing;

namespace QuantGen.Generator.Planning;

internal static partial class QuantizationPlanner
{
    /// <summary>One op of the inlined graph while it is being planned (mutable; never leaves the planner).</summary>
    private sealed class Node
    {
        public NodeKind Kind;
        public ModuleKind Module;
        public string Path = string.Empty;
        public string Layer = string.Empty;
        public string Access = string.Empty;
        public string ModuleType = string.Empty;

        // Functional ops: PyTorch's function name and the module whose forward the call is written in (qconfig lookup).
        public string FunctionName = string.Empty;
        public string ScopePath = string.Empty;
        public string ScopeType = string.Empty;
        public int[] Inputs = System.Array.Empty<int>();
        public int Output;
        public int[] Ints = System.Array.Empty<int>();
        public int? FlattenStart;
        public int? FlattenEnd;
        public string Comment = string.Empty;
        public LocationInfo? Location;
        public List<(int Condition, bool Negated)> Guard = new();
        public bool AutoFuse;

        // [NoQuantize]: the op stays in float between a dequantize and a quantize (PyTorch's qconfig = None).
        public bool Island;
        public string? FuseGroup;
        public int FusePosition;

        // Fusion results.
        public string? BatchNormAccess;
        public string? BatchNormPath;
        public bool Relu;
        public Node? FusedInto;
        public List<Node> Fused = new();
    }

    /// <summary>The property a [Quantize] class's generated code declares to expose a bool field its forward branches on.</summary>
    internal static string ConditionAccessor(string member) => "QuantGenCondition_" + member.TrimStart('@');

    private sealed class Planner
    {
        private readonly ModelSpec _spec;
        private readonly Dictionary<string, ModelSpec> _all = new();
        private readonly Dictionary<string, MemberSpec> _members;
        private readonly List<Node> _nodes = new();
        private readonly List<ConditionPlan> _conditions = new();

        // Bool fields of this class that its own forward branches on: exposed to parents that inline it.
        private readonly List<string> _conditionMembers = new();
        private readonly Dictionary<string, int> _fxNames = new();
        private readonly Dictionary<string, int> _calledModules = new();
        private readonly HashSet<string> _validGroups = new();
        private readonly List<string> _autoFusions = new();
        private bool _failed;
        private bool _needsIndex;
        private int _nextValue = 1;
        private readonly System.Threading.CancellationToken _cancellationToken;

        public Planner(ModelSpec spec, EquatableArray<DiagnosticInfo> parseDiagnostics, EquatableArray<ModelSpec> all, System.Threading.CancellationToken cancellationToken)
        {
            _spec = spec;
            _cancellationToken = cancellationToken;
            Diagnostics = new List<DiagnosticInfo>(parseDiagnostics);
            _members = ByName(spec);

            foreach (ModelSpec other in all)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                _all[other.MetadataName] = other;
            }
        }

        public List<DiagnosticInfo> Diagnostics { get; }

        private bool HasErrors => Diagnostics.Any(d => d.IsError);

        public ModelPlan? Run()
        {
            CheckFuseGroups(_spec, report: true);
            if (_spec.Forward is not { } forward || HasErrors)
            {
                return null;
            }

            CheckUnused(forward);
            if (HasErrors)
            {
                return null;
            }

            int result = Expand(_spec, string.Empty, 0, new List<(int, bool)>(), null, 0, new HashSet<string> { _spec.MetadataName });
            if (HasErrors || _failed)
            {
                return null;
            }

            CheckCalledTwice();
            ApplyFuseGroups();
            if (HasErrors)
            {
                return null;
            }

            if (_spec.AutoFuse)
            {
                AutoFuse(result);
            }

            CheckRegion(result);
            if (HasErrors)
            {
                return null;
            }

            if (_autoFusions.Count > 0)
            {
                Report(DiagnosticDescriptors.FusionsMade, _spec.Location, _spec.Name, string.Join(", ", _autoFusions));
            }

            return Build(forward, result);
        }

        /// <summary>QG0003, QG0013, QG0020, QG0005: checks of one class's [Fuse] groups that need only its members.</summary>
        private void CheckFuseGroups(ModelSpec spec, bool report)
        {
            var members = ByName(spec);
            var grouped = new HashSet<string>();
            for (int g = 0; g < spec.FuseGroups.Count; g++)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                FuseGroupSpec group = spec.FuseGroups[g];
                bool valid = true;
                var seen = new HashSet<string>();
                for (int i = 0; i < group.Members.Count; i++)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    string name = group.Members[i];
                    LocationInfo? location = i < group.ArgumentLocations.Count ? group.ArgumentLocations[i] : group.Location;
                    DiagnosticDescriptor? problem = null;
                    if (!members.ContainsKey(name))
                    {
                        problem = DiagnosticDescriptors.FuseUnknownMember;
                    }
                    else if (!seen.Add(name) || grouped.Contains(name))
                    {
                        problem = DiagnosticDescriptors.FuseMemberRepeated;
                    }
                    else if (members[name].NoQuantize)
                    {
                        // A float island runs apart from the int8 ops around it: nothing can be folded into it.
                        problem = DiagnosticDescriptors.FuseNoQuantizeMember;
                    }

                    if (problem is null)
                    {
                        continue;
                    }

                    valid = false;
                    if (report)
                    {
                        DiagnosticInfo diagnostic = WithoutEntryFix(DiagnosticInfo.Create(problem, location, spec.Name, name), group, i, members, grouped);
                        if (problem == DiagnosticDescriptors.FuseNoQuantizeMember)
                        {
                            // The other remedy: the member is not meant to stay in float after all.
                            diagnostic = diagnostic.WithProperty(FixProperties.RemoveNoQuantizeMember, name);
                        }

                        Diagnostics.Add(diagnostic);
                    }
                }

                if (!valid)
                {
                    continue;
                }

                ModuleKind[] kinds = group.Members.Select(m => members[m].Kind).ToArray();
                if (!SupportedFusions.Any(s => s.SequenceEqual(kinds)))
                {
                    if (report)
                    {
                        string described = kinds.Length switch
                        {
                            0 => "empty",
                            1 => "a single module, " + kinds[0],
                            _ => SequenceName(kinds),
                        };
                        Diagnostics.Add(ReorderOrRemoveFix(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedFusion, group.Location, spec.Name, Quoted(group.Members), described), spec, group, members));
                    }

                    continue;
                }

                _validGroups.Add(spec.MetadataName + "#" + g.ToString(CultureInfo.InvariantCulture));
                foreach (string name in group.Members)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    grouped.Add(name);
                }
            }
        }

        /// <summary>
        /// The [Fuse] code fix for a bad entry (QG0003, QG0013, QG0020): remove just that argument when the others
        /// are a valid group on their own (known, distinct, not fused elsewhere, not [NoQuantize], a supported
        /// sequence), otherwise the whole attribute. None when the arguments do not match the names one to one
        /// (<c>[Fuse(new[] { ... })]</c>).
        /// </summary>
        private static DiagnosticInfo WithoutEntryFix(DiagnosticInfo diagnostic, FuseGroupSpec group, int entry, Dictionary<string, MemberSpec> members, HashSet<string> grouped)
        {
            if (group.Location is null)
            {
                return diagnostic;
            }

            diagnostic = diagnostic.WithAdditionalLocation(group.Location);
            if (!OneArgumentPerMember(group))
            {
                return diagnostic.WithProperty(FixProperties.FuseFix, FixProperties.RemoveFuseAttribute);
            }

            List<string> rest = group.Members.Where((_, i) => i != entry).ToList();
            bool restIsValid = rest.Count >= 2
                && rest.Distinct().Count() == rest.Count
                && rest.All(m => members.TryGetValue(m, out MemberSpec? member) && !member.NoQuantize && !grouped.Contains(m))
                && SupportedFusions.Any(s => s.SequenceEqual(rest.Select(m => members[m].Kind)));
            return restIsValid
                ? diagnostic.WithProperty(FixProperties.FuseFix, FixProperties.RemoveFuseArgument)
                    .WithProperty(FixProperties.FuseArgument, entry.ToString(CultureInfo.InvariantCulture))
                : diagnostic.WithProperty(FixProperties.FuseFix, FixProperties.RemoveFuseAttribute);
        }

        /// <summary>Whether each member name is an argument of its own (not <c>[Fuse(new[] { ... })]</c>), so an entry can be moved or removed.</summary>
        private static bool OneArgumentPerMember(FuseGroupSpec group) =>
            group.ArgumentLocations.Count == group.Members.Count && group.ArgumentLocations.All(l => l != group.Location);

        /// <summary>
        /// The [Fuse] code fix for an unsupported sequence (QG0005): list the members in the order forward calls them
        /// when that order is a supported sequence (ReLU+Conv2d written for a conv then a relu), otherwise remove the
        /// attribute.
        /// </summary>
        private DiagnosticInfo ReorderOrRemoveFix(DiagnosticInfo diagnostic, ModelSpec spec, FuseGroupSpec group, Dictionary<string, MemberSpec> members)
        {
            if (group.Location is null)
            {
                return diagnostic;
            }

            diagnostic = diagnostic.WithAdditionalLocation(group.Location);
            if (OneArgumentPerMember(group) && spec.Forward is { } forward)
            {
                int[] firstCall = group.Members
                    .Select(m => forward.Calls.Select((c, i) => (c, i)).Where(p => p.c.Kind == NodeKind.Module && p.c.Member == m).Select(p => p.i).DefaultIfEmpty(-1).First())
                    .ToArray();
                if (firstCall.All(i => i >= 0) && firstCall.Distinct().Count() == firstCall.Length)
                {
                    int[] order = Enumerable.Range(0, firstCall.Length).OrderBy(i => firstCall[i]).ToArray();
                    if (SupportedFusions.Any(s => s.SequenceEqual(order.Select(i => members[group.Members[i]].Kind))))
                    {
                        return diagnostic.WithProperty(FixProperties.FuseFix, FixProperties.ReorderFuse)
                            .WithProperty(FixProperties.FuseOrder, string.Join(",", order.Select(i => i.ToString(CultureInfo.InvariantCulture))));
                    }
                }
            }

            return diagnostic.WithProperty(FixProperties.FuseFix, FixProperties.RemoveFuseAttribute);
        }

        /// <summary>
        /// QG0007, QG0012, QG0017: when the op at <paramref name="path"/> belongs to the call of a top-level member that
        /// can be a float island (a Sequential, a [Quantize] sub-module, a supported module), [NoQuantize] on that member
        /// runs the call in float as one island, so nothing in it needs to be quantized: the code fix adds it.
        /// </summary>
        private DiagnosticInfo WithNoQuantizeFix(DiagnosticInfo diagnostic, string path)
        {
            string top = path.Split('.')[0];
            return _members.TryGetValue(top, out MemberSpec? member) && !member.NoQuantize && IslandKinds.Contains(member.Kind)
                ? diagnostic.WithProperty(FixProperties.NoQuantizeMember, member.Name)
                : diagnostic;
        }

        /// <summary>QG0006: a module result nobody uses.</summary>
        private void CheckUnused(ForwardSpec forward)
        {
            var users = new int[forward.Calls.Count + 1];
            foreach (ForwardCall call in forward.Calls)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                foreach (int input in call.AllInputs)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    users[input]++;
                }
            }

            users[forward.Result]++;
            for (int i = 0; i < forward.Calls.Count; i++)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                ForwardCall call = forward.Calls[i];
                if (users[i + 1] == 0 && call.Kind != NodeKind.Select)
                {
                    string what = call.Kind == NodeKind.Module ? $"'{call.Member}'" : "this op";
                    Report(DiagnosticDescriptors.UnsupportedForwardStatement, call.Location, call.Text, _spec.Name, $"the result of {what} is never used");
                }
            }
        }

        /// <summary>
        /// Adds the nodes of <paramref name="spec"/>'s forward, run on global value <paramref name="input"/>,
        /// with member paths under <paramref name="prefix"/>; returns the global value it returns.
        /// </summary>
        private int Expand(ModelSpec spec, string prefix, int input, List<(int, bool)> guard, LocationInfo? callSite, int depth, HashSet<string> stack, string typeName = "")
        {
            ForwardSpec forward = spec.Forward!;
            var members = ByName(spec);
            var values = new int[forward.Calls.Count + 1];
            values[0] = input;
            string inlined = prefix.Length == 0 ? string.Empty : $" [{prefix.TrimEnd('.')}]";

            // The class's own conditions, as global ones.
            var conditions = new int[forward.Conditions.Count];
            for (int c = 0; c < forward.Conditions.Count; c++)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                conditions[c] = AddCondition(spec, prefix, forward.Conditions[c], forward.FileName, inlined, callSite, typeName);
            }

            for (int i = 0; i < forward.Calls.Count; i++)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                ForwardCall call = forward.Calls[i];
                int[] inputs = call.AllInputs.Select(v => values[v]).ToArray();
                var nodeGuard = new List<(int, bool)>(guard);
                if (call.Condition >= 0)
                {
                    nodeGuard.Add((conditions[call.Condition], call.Negated));
                }

                string comment = $"{forward.FileName}({call.Line.ToString(CultureInfo.InvariantCulture)}): {call.Text}{inlined}";
                LocationInfo? location = callSite ?? call.Location;
                if (call.Kind != NodeKind.Module)
                {
                    if (call.Kind == NodeKind.Select)
                    {
                        values[i + 1] = AddNode(new Node
                        {
                            Kind = NodeKind.Select,
                            Inputs = inputs,
                            Ints = new[] { conditions[call.Ints[0]] },
                            Comment = comment,
                            Location = location,
                            Guard = guard,
                            Path = prefix + "select",
                        });
                        continue;
                    }

                    string baseName = call.Kind switch
                    {
                        NodeKind.Add => "add",
                        NodeKind.Cat => "cat",
                        NodeKind.Flatten => "flatten",
                        NodeKind.Reshape => call.Text.Contains(".view(") ? "view" : "reshape",
                        NodeKind.Relu => "relu",
                        _ => "max_pool2d",
                    };
                    string layer = FxName(prefix + baseName);
                    values[i + 1] = AddNode(new Node
                    {
                        Kind = call.Kind,
                        Inputs = inputs,
                        Ints = call.Ints.ToArray(),
                        Comment = comment,
                        Location = location,
                        Guard = nodeGuard,
                        Path = layer,
                        Layer = layer,
                        AutoFuse = spec.AutoFuse,
                        FunctionName = baseName,
                        ScopePath = prefix.TrimEnd('.'),
                        ScopeType = spec.Name,
                    });
                    continue;
                }

                MemberSpec member = members[call.Member];
                string path = prefix + member.Name;
                bool topLevel = prefix.Length == 0;
                bool island = member.NoQuantize && IslandKinds.Contains(member.Kind);
                if (member.NoQuantize && !island)
                {
                    DiagnosticInfo diagnostic = DiagnosticInfo.Create(DiagnosticDescriptors.NoQuantizeUnsupported, location, _spec.Name, path, NoQuantizeProblem(member.Kind));
                    // On a stub, Identity or Dropout the attribute asks for nothing; on another module removing it
                    // would only trade this error for QG0007, so no fix is offered there.
                    Diagnostics.Add(topLevel && member.Kind is ModuleKind.QuantStub or ModuleKind.DeQuantStub or ModuleKind.Identity or ModuleKind.Dropout
                        ? diagnostic.WithProperty(FixProperties.RemoveNoQuantizeMember, member.Name)
                        : diagnostic);
                }
                // A [NoQuantize] sub-module or Sequential is not inlined: its whole call is one float island.
                switch (member.Kind)
                {
                    case ModuleKind.SubModel when !island:
                    {
                        if (CannotExpand(member.SubModelType!, member.TypeName, path, depth, stack) is not { } child)
                        {
                            values[i + 1] = input;
                            continue;
                        }

                        stack.Add(member.SubModelType!);
                        values[i + 1] = Expand(child, path + ".", inputs[0], nodeGuard, location, depth + 1, stack, member.TypeName);
                        stack.Remove(member.SubModelType!);
                        continue;
                    }

                    case ModuleKind.Sequential when !island:
                    {
                        if (member.ChildrenProblem is not null)
                        {
                            Diagnostics.Add(WithNoQuantizeFix(DiagnosticInfo.Create(DiagnosticDescriptors.SequentialNotVisible, location, spec.Name, member.Name, member.ChildrenProblem), path));
                            values[i + 1] = input;
                            continue;
                        }

                        int current = inputs[0];
                        foreach (SequentialChild sequentialChild in member.Children)
                        {
                            _cancellationToken.ThrowIfCancellationRequested();
                            string childPath = path + "." + sequentialChild.Name;
                            if (sequentialChild.Kind == ModuleKind.SubModel)
                            {
                                if (CannotExpand(sequentialChild.SubModelType!, sequentialChild.TypeName, childPath, depth, stack) is not { } child)
                                {
                                    continue;
                                }

                                stack.Add(sequentialChild.SubModelType!);
                                current = Expand(child, childPath + ".", current, nodeGuard, location, depth + 1, stack, sequentialChild.TypeName);
                                stack.Remove(sequentialChild.SubModelType!);
                                continue;
                            }

                            if (sequentialChild.Kind is ModuleKind.Unsupported or ModuleKind.Sequential)
                            {
                                Diagnostics.Add(WithNoQuantizeFix(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedModuleType, location, _spec.Name, childPath, sequentialChild.TypeName, UnsupportedHint(sequentialChild.Kind)), childPath));
                                continue;
                            }

                            _needsIndex = true;
                            current = AddNode(new Node
                            {
                                Kind = NodeKind.Module,
                                Module = sequentialChild.Kind,
                                Inputs = new[] { current },
                                Comment = $"{comment} → {member.Name}[{sequentialChild.Name}]",
                                Location = location,
                                Guard = nodeGuard,
                                Path = childPath,
                                Layer = ModuleLayer(childPath),
                                Access = Lookup(sequentialChild.TypeName, childPath),
                                ModuleType = ModuleTypeName(sequentialChild.TypeName),
                                AutoFuse = spec.AutoFuse,
                            });
                        }

                        values[i + 1] = current;
                        continue;
                    }

                    case ModuleKind.Unsupported:
                    {
                        DiagnosticInfo diagnostic = WithNoQuantizeFix(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedModuleType, location, _spec.Name, path, member.TypeName, UnsupportedHint(member.Kind)), path);
                        if (topLevel && member.ConcreteType is { } concrete)
                        {
                            // Module<Tensor, Tensor> conv1 = Conv2d(...): the declared type is what hides the module.
                            diagnostic = diagnostic.WithProperty(FixProperties.ConcreteTypeMember, member.Name).WithProperty(FixProperties.ConcreteType, concrete);
                        }

                        Diagnostics.Add(diagnostic);
                        values[i + 1] = input;
                        continue;
                    }
                }

                if (!topLevel)
                {
                    _needsIndex = true;
                }

                Node node = new()
                {
                    Kind = NodeKind.Module,
                    Module = member.Kind,
                    Inputs = inputs,
                    Comment = comment,
                    Location = location,
                    Guard = nodeGuard,
                    Path = path,
                    Layer = ModuleLayer(path),
                    // A nullable member is only reached under the condition that tested it.
                    Access = topLevel ? "model." + Names.Identifier(member.Name) + (member.TypeName.EndsWith("?", System.StringComparison.Ordinal) ? "!" : string.Empty) : Lookup(member.TypeName, path),
                    ModuleType = ModuleTypeName(member.TypeName),
                    FlattenStart = member.FlattenStartDim,
                    FlattenEnd = member.FlattenEndDim,
                    AutoFuse = spec.AutoFuse && !island,
                    Island = island,
                };
                for (int g = 0; g < spec.FuseGroups.Count; g++)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    int position = spec.FuseGroups[g].Members.ToArray().ToList().IndexOf(member.Name);
                    string key = spec.MetadataName + "#" + g.ToString(CultureInfo.InvariantCulture);
                    if (position >= 0 && (spec == _spec ? _validGroups.Contains(key) : IsValidGroup(spec, g)))
                    {
                        node.FuseGroup = prefix + "#" + key;
                        node.FusePosition = position;
                    }
                }

                values[i + 1] = AddNode(node);
            }

            return values[forward.Result];
        }

        /// <summary>Members by name; a duplicate name (a compile error the user sees anyway) keeps the first.</summary>
        private static Dictionary<string, MemberSpec> ByName(ModelSpec spec)
        {
            var members = new Dictionary<string, MemberSpec>();
            foreach (MemberSpec member in spec.Members)
            {
                if (!members.ContainsKey(member.Name))
                {
                    members[member.Name] = member;
                }
            }

            return members;
        }

        private bool IsValidGroup(ModelSpec spec, int group)
        {
            var members = ByName(spec);
            FuseGroupSpec fuse = spec.FuseGroups[group];
            return fuse.Members.All(members.ContainsKey)
                && SupportedFusions.Any(s => s.SequenceEqual(fuse.Members.Select(m => members[m].Kind)));
        }

        // QG0007 fires only on classes that keep the generated form (QuantStub/DeQuantStub, [Fuse] or [QConfig]);
        // without those the class is bound at Prepare, where any module is taken (see docs/architecture.md).
        private const string BoundFormHint = "; without QuantStub/DeQuantStub, [Fuse] and [QConfig] on the class, QuantGen binds it at Prepare instead, where any module is taken (your own module classes are inlined, modules without an int8 op run in float)";

        private static string UnsupportedHint(ModuleKind kind) => kind == ModuleKind.Sequential
            ? "; a Sequential inside a Sequential is not inlined in this form: make it a [Quantize] class" + BoundFormHint
            : "; if it is your own module class, mark it [Quantize] (and partial) so QuantGen inlines its forward" + BoundFormHint;

        private int AddCondition(ModelSpec spec, string prefix, ConditionSpec condition, string file, string inlined, LocationInfo? callSite, string typeName)
        {
            string expression;
            bool topLevel = prefix.Length == 0;
            switch (condition.Kind)
            {
                case "const":
                    expression = condition.Constant ? "true" : "false";
                    break;
                case "null" or "notnull":
                {
                    string op = condition.Kind == "null" ? "is null" : "is not null";
                    if (topLevel)
                    {
                        expression = $"model.{Names.Identifier(condition.Member)} {op}";
                    }
                    else
                    {
                        _needsIndex = true;
                        expression = $"{Names.ModuleLookup}.Find(modules, {Names.Literal(prefix + condition.Member)}) {op}";
                    }

                    break;
                }

                default:
                    if (topLevel)
                    {
                        expression = "model." + Names.Identifier(condition.Member);
                        _conditionMembers.Add(condition.Member);
                    }
                    else if (typeName.Length > 0)
                    {
                        // A private field of another class: read through the accessor that class's own generated code has.
                        expression = $"{Lookup(typeName, prefix.TrimEnd('.'))}.{ConditionAccessor(condition.Member)}";
                    }
                    else
                    {
                        Report(DiagnosticDescriptors.DataDependentControlFlow, callSite, condition.Text, spec.Name, $"the bool field '{condition.Member}' of the inlined sub-module '{prefix.TrimEnd('.')}' cannot be read from {_spec.Name}; test a module member for null instead");
                        expression = "false";
                    }

                    break;
            }

            string field = "_c" + _conditions.Count.ToString(CultureInfo.InvariantCulture);
            _conditions.Add(new ConditionPlan(field, expression, $"{file}: if ({condition.Text}){inlined}"));
            return _conditions.Count - 1;
        }

        private string FxName(string baseName)
        {
            _fxNames.TryGetValue(baseName, out int count);
            _fxNames[baseName] = count + 1;
            return count == 0 ? baseName : baseName + "_" + count.ToString(CultureInfo.InvariantCulture);
        }

        private string ModuleLayer(string path)
        {
            // A stateless module called twice gets FX's node names: relu, relu_1.
            _calledModules.TryGetValue(path, out int count);
            _calledModules[path] = count + 1;
            return count == 0 ? path : path + "_" + count.ToString(CultureInfo.InvariantCulture);
        }

        private string Lookup(string typeName, string path)
        {
            _needsIndex = true;
            return $"{Names.ModuleLookup}.Get<{ModuleTypeName(typeName)}>(modules, {Names.Literal(_spec.Name)}, {Names.Literal(path)})";
        }

        private static string ModuleTypeName(string typeName) => "global::" + typeName.TrimEnd('?');

        private int AddNode(Node node)
        {
            node.Output = _nextValue++;
            _nodes.Add(node);
            return node.Output;
        }

        /// <summary>QG0009: a module with weights called more than once.</summary>
        private void CheckCalledTwice()
        {
            var seen = new HashSet<string>();
            var reported = new HashSet<string>();
            foreach (Node node in _nodes.Where(n => n.Kind == NodeKind.Module))
            {
                _cancellationToken.ThrowIfCancellationRequested();
                bool stateless = node.Module is ModuleKind.ReLU or ModuleKind.Identity or ModuleKind.Dropout or ModuleKind.MaxPool2d
                    or ModuleKind.AvgPool2d or ModuleKind.AdaptiveAvgPool2d or ModuleKind.Flatten or ModuleKind.Upsample;
                if (!seen.Add(node.Path) && !stateless && reported.Add(node.Path))
                {
                    Report(DiagnosticDescriptors.ModuleCalledTwice, node.Location, _spec.Name, node.Path);
                }
            }
        }

        private int[] Users()
        {
            var users = new int[_nextValue];
            foreach (Node node in _nodes.Where(n => n.FusedInto is null))
            {
                _cancellationToken.ThrowIfCancellationRequested();
                foreach (int input in node.Inputs)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    users[input]++;
                }
            }

            return users;
        }

        /// <summary>[Fuse] groups: QG0004 when the members do not follow each other in the graph.</summary>
        private void ApplyFuseGroups()
        {
            int[] users = Users();
            foreach (IGrouping<string, Node> group in _nodes.Where(n => n.FuseGroup is not null).GroupBy(n => n.FuseGroup!))
            {
                _cancellationToken.ThrowIfCancellationRequested();
                bool own = group.Key.StartsWith("#", System.StringComparison.Ordinal);
                List<Node> nodes = group.OrderBy(n => n.FusePosition).ToList();
                FuseGroupSpec? spec = own ? _spec.FuseGroups[int.Parse(group.Key.Substring(group.Key.LastIndexOf('#') + 1), CultureInfo.InvariantCulture)] : null;
                string? problem = null;
                LocationInfo? where = spec?.Location;
                int expected = spec?.Members.Count ?? nodes.Count;
                if (nodes.Count != expected || nodes.Select(n => n.FusePosition).Distinct().Count() != nodes.Count)
                {
                    problem = nodes.Count < expected
                        ? $"'{spec!.Members.First(m => nodes.All(n => !n.Path.EndsWith(m, System.StringComparison.Ordinal)))}' is never called in forward"
                        : "a fused module is called more than once";
                }
                else
                {
                    for (int i = 1; i < nodes.Count && problem is null; i++)
                    {
                        _cancellationToken.ThrowIfCancellationRequested();
                        if (nodes[i].Inputs[0] != nodes[i - 1].Output || !SameGuard(nodes[i], nodes[i - 1]))
                        {
                            problem = $"'{Last(nodes[i].Path)}' does not take the output of '{Last(nodes[i - 1].Path)}'";
                            where = nodes[i].Location;
                        }
                        else if (users[nodes[i - 1].Output] > 1)
                        {
                            problem = $"the output of '{Last(nodes[i - 1].Path)}' is also used elsewhere";
                            where = nodes[i].Location;
                        }
                    }
                }

                if (problem is not null)
                {
                    if (own)
                    {
                        // Removing the group is a remedy that always applies; automatic fusion still fuses what does follow.
                        Diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.FuseNotConsecutive, where, _spec.Name, Quoted(spec!.Members), problem)
                            .WithAdditionalLocation(spec.Location)
                            .WithProperty(FixProperties.FuseFix, FixProperties.RemoveFuseAttribute));
                    }

                    continue;
                }

                for (int i = 1; i < nodes.Count; i++)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    Fuse(nodes[0], nodes[i]);
                }
            }
        }

        private static string Last(string path) => path.Substring(path.LastIndexOf('.') + 1);

        private static bool SameGuard(Node a, Node b) => a.Guard.SequenceEqual(b.Guard);

        private static void Fuse(Node head, Node follower)
        {
            follower.FusedInto = head;
            head.Fused.Add(follower);
            if (follower.Kind == NodeKind.Module && follower.Module is ModuleKind.BatchNorm2d or ModuleKind.BatchNorm1d)
            {
                head.BatchNormAccess = follower.Access;
                head.BatchNormPath = follower.Path;
            }
            else
            {
                head.Relu = true;
            }
        }

        private static bool IsRelu(Node node) => node.Kind == NodeKind.Relu || (node.Kind == NodeKind.Module && node.Module == ModuleKind.ReLU);

        /// <summary>PyTorch's fusion patterns, found in the graph; a follower with other users blocks them (QG0019).</summary>
        private void AutoFuse(int result)
        {
            int[] users = Users();
            users[result]++;
            var readers = new Dictionary<int, List<Node>>();
            foreach (Node node in _nodes)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                foreach (int input in node.Inputs)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    if (!readers.TryGetValue(input, out List<Node>? list))
                    {
                        readers[input] = list = new List<Node>();
                    }

                    list.Add(node);
                }
            }

            Node? SoleFollower(Node head, System.Func<Node, bool> accepts, string headName)
            {
                if (!readers.TryGetValue(head.Output, out List<Node>? list))
                {
                    return null;
                }

                Node? candidate = list.FirstOrDefault(n => n.FusedInto is null && n.FuseGroup is null && n.AutoFuse && accepts(n));
                if (candidate is null)
                {
                    return null;
                }

                if (users[head.Output] > 1 || !SameGuard(head, candidate))
                {
                    string others = string.Join(", ", list.Where(n => n != candidate).Select(n => n.Layer.Length > 0 ? n.Layer : "a select").Concat(head.Output == result ? new[] { "the return" } : System.Array.Empty<string>()));
                    string why = !SameGuard(head, candidate) ? "they run under different conditions" : $"{headName}'s output is also used by {others}";
                    Report(DiagnosticDescriptors.FusionBlocked, candidate.Location, _spec.Name, headName, candidate.Layer, why);
                    return null;
                }

                return candidate;
            }

            foreach (Node head in _nodes.ToList())
            {
                _cancellationToken.ThrowIfCancellationRequested();
                if (head.FusedInto is not null || head.FuseGroup is not null || !head.AutoFuse)
                {
                    continue;
                }

                bool conv = head.Kind == NodeKind.Module && head.Module is ModuleKind.Conv2d or ModuleKind.ConvTranspose2d;
                bool linear = head.Kind == NodeKind.Module && head.Module == ModuleKind.Linear;
                bool batchNorm = head.Kind == NodeKind.Module && head.Module == ModuleKind.BatchNorm2d;
                bool add = head.Kind == NodeKind.Add;
                if (!(conv || linear || batchNorm || add))
                {
                    continue;
                }

                var chain = new List<string> { head.Layer };
                Node last = head;
                if (conv || linear)
                {
                    ModuleKind batchNormKind = conv ? ModuleKind.BatchNorm2d : ModuleKind.BatchNorm1d;
                    Node? bn = SoleFollower(head, n => n.Kind == NodeKind.Module && n.Module == batchNormKind, head.Layer);
                    if (bn is not null)
                    {
                        Fuse(head, bn);
                        chain.Add(bn.Layer);
                        last = bn;
                    }
                }

                Node? relu = SoleFollower(last, IsRelu, last.Layer);
                if (relu is not null)
                {
                    Fuse(head, relu);
                    chain.Add(relu.Layer);
                    if (last != head)
                    {
                        // The ReLU read the BatchNorm's output, which is now the head's.
                        relu.Inputs = new[] { head.Output };
                    }
                }

                if (chain.Count > 1)
                {
                    _autoFusions.Add(string.Join("+", chain));
                }
            }
        }

        /// <summary>
        /// QG0011 (stub order), QG0010 (work outside the region), QG0012 (a BatchNorm1d with no Linear).
        /// </summary>
        private void CheckRegion(int result)
        {
            Node? quantStub = null, deQuantStub = null;
            foreach (Node node in _nodes.Where(n => n.Kind == NodeKind.Module))
            {
                _cancellationToken.ThrowIfCancellationRequested();
                switch (node.Module)
                {
                    case ModuleKind.QuantStub when quantStub is not null:
                        Report(DiagnosticDescriptors.StubOrder, node.Location, _spec.Name, node.Path, $"is a second QuantStub call (after '{quantStub.Path}')");
                        break;
                    case ModuleKind.QuantStub when deQuantStub is not null:
                        Report(DiagnosticDescriptors.StubOrder, node.Location, _spec.Name, node.Path, $"is called after the DeQuantStub '{deQuantStub.Path}'");
                        break;
                    case ModuleKind.QuantStub:
                        quantStub = node;
                        break;
                    case ModuleKind.DeQuantStub when deQuantStub is not null:
                        Report(DiagnosticDescriptors.StubOrder, node.Location, _spec.Name, node.Path, $"is a second DeQuantStub call (after '{deQuantStub.Path}')");
                        break;
                    case ModuleKind.DeQuantStub:
                        deQuantStub = node;
                        break;
                }
            }

            if (HasErrors)
            {
                return;
            }

            // 0: float before the QuantStub, 1: quantized, 2: float after the DeQuantStub.
            var state = new int[_nextValue];
            state[0] = quantStub is null ? 1 : 0;
            foreach (Node node in _nodes)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                int inputState = node.Inputs.Length == 0 ? 1 : node.Inputs.Select(i => state[i]).Max();
                bool passive = node.Kind == NodeKind.Select || (node.Kind == NodeKind.Module && node.Module is ModuleKind.Identity or ModuleKind.Dropout);
                if (node.Kind == NodeKind.Module && node.Module == ModuleKind.QuantStub)
                {
                    state[node.Output] = 1;
                }
                else if (node.Kind == NodeKind.Module && node.Module == ModuleKind.DeQuantStub)
                {
                    state[node.Output] = 2;
                }
                else if (passive)
                {
                    state[node.Output] = inputState;
                }
                else
                {
                    state[node.Output] = 1;
                    if (node.FusedInto is null && node.Inputs.Any(i => state[i] != 1))
                    {
                        string where = node.Inputs.Any(i => state[i] == 0)
                            ? $"before the QuantStub '{quantStub!.Path}'"
                            : $"after the DeQuantStub '{deQuantStub!.Path}'";
                        Report(DiagnosticDescriptors.OutsideQuantizedRegion, node.Location, _spec.Name, node.Path, where);
                    }
                }

                if (node.FusedInto is null && node.Kind == NodeKind.Module && node.Module == ModuleKind.BatchNorm1d)
                {
                    Diagnostics.Add(WithNoQuantizeFix(DiagnosticInfo.Create(DiagnosticDescriptors.BatchNormNotFused, node.Location, _spec.Name, node.Path), node.Path));
                }
            }
        }

        private ModelPlan Build(ForwardSpec forward, int result)
        {
            var quantizedNames = new HashSet<string>(_members.Keys) { "forward" };
            var reservedObserverNames = new HashSet<string>(_members.Keys.Select(m => m + "_activation"));
            var observedNames = new HashSet<string> { "_model", "QConfig", "forward", "Convert", "ConvertReference", "Dispose" };
            var fieldNames = new HashSet<string>(_conditions.Select(c => c.Field)) { "_model" };
            var claimedMembers = new HashSet<string>();
            var observers = new List<ObserverPlan>();
            var steps = new List<StepPlan>();
            var modules = new List<ModuleFieldPlan>();
            var alias = new Dictionary<int, int>();
            var qparams = new Dictionary<int, int>();
            var selectQParams = new Dictionary<int, string>();
            var observerParent = new List<int>();

            int Resolve(int value)
            {
                while (alias.TryGetValue(value, out int target))
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    value = target;
                }

                return value;
            }

            string GuardOf(Node node) => string.Join(" && ", node.Guard.Select(g => (g.Negated ? "!" : string.Empty) + "this." + _conditions[g.Condition].Field));

            int AddObserver(string path, string guard, bool modelInput = false)
            {
                // Only the model input's observer can meet a name a member's observer will take.
                string property = modelInput
                    ? Unique("input_activation", new HashSet<string>(observedNames.Concat(reservedObserverNames)))
                    : Unique(Identifier(path) + "_activation", observedNames);
                observedNames.Add(property);
                observers.Add(new ObserverPlan(property, _spec.Name + "." + path, path, "q" + observers.Count.ToString(CultureInfo.InvariantCulture), guard));
                observerParent.Add(observers.Count - 1);
                return observers.Count - 1;
            }

            int Find(int observer)
            {
                while (observerParent[observer] != observer)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    observer = observerParent[observer];
                }

                return observer;
            }

            string QuantizedName(Node node, string path) =>
                _members.ContainsKey(path) && claimedMembers.Add(path) ? path : Unique(Identifier(path), quantizedNames);

            string file = forward.FileName;
            bool hasQuantStub = _nodes.Any(n => n.Kind == NodeKind.Module && n.Module == ModuleKind.QuantStub);
            if (!hasQuantStub)
            {
                // No QuantStub: the model input is the first quantization point.
                string property = Unique("input", quantizedNames);
                int observer = AddObserver("input", string.Empty, modelInput: true);
                steps.Add(new StepPlan(StepKind.Quantize, string.Empty, "input", property, null, null, false, observer, -1, 0, 0, null, null,
                    new[] { $"{file}: forward's input (no QuantStub, so the whole forward is quantized)" }.ToEquatableArray()) with { QConfigLookup = "mapping.Global" });
                qparams[0] = observer;
            }

            bool inRegion = !hasQuantStub;
            foreach (Node node in _nodes)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                if (node.FusedInto is not null)
                {
                    alias[node.Output] = node.FusedInto.Output;
                    continue;
                }

                int[] inputs = node.Inputs.Select(Resolve).ToArray();
                int input = inputs.Length > 0 ? inputs[0] : 0;
                string guard = GuardOf(node);
                var comments = new List<string> { node.Comment };
                comments.AddRange(node.Fused.Select(f => f.Comment + $" (fused into {node.Layer})"));
                EquatableArray<string> fusedMembers = node.Fused.Where(f => f.Kind == NodeKind.Module).Select(f => f.Path).ToEquatableArray();
                int inputQ = qparams.TryGetValue(input, out int q) ? q : -1;
                string inputQExpression = selectQParams.TryGetValue(input, out string? expression) ? expression : string.Empty;

                StepPlan Step(StepKind kind, string? quantizedProperty, int observer, string? floatField = null, string? moduleField = null, int? output = null) =>
                    new(kind, node.Path, node.Layer, quantizedProperty, floatField, node.BatchNormPath, node.Relu, observer, inputQ, input, output ?? node.Output,
                        node.FlattenStart, node.FlattenEnd, comments.ToEquatableArray(), fusedMembers, inputs.ToEquatableArray(), node.Ints.ToEquatableArray(),
                        guard, moduleField, node.Access, inputQExpression, node.BatchNormAccess ?? string.Empty, QConfigLookup(node));

                string ModuleField()
                {
                    string field = Unique("_" + Identifier(node.Path), fieldNames);
                    observedNames.Add(field);
                    modules.Add(new ModuleFieldPlan(field, node.ModuleType, node.Access));
                    return field;
                }

                if (node.Kind == NodeKind.Select)
                {
                    alias.Remove(node.Output);
                    string condition = "this." + _conditions[node.Ints[0]].Field;
                    steps.Add(Step(StepKind.Select, null, -1) with { Guard = guard, Member = condition });
                    string Q(int value) => selectQParams.TryGetValue(value, out string? e) ? e : qparams.TryGetValue(value, out int o) ? "#" + o.ToString(CultureInfo.InvariantCulture) : string.Empty;
                    string a = Q(inputs[0]), b = Q(inputs[1]);
                    if (a.Length > 0 && b.Length > 0)
                    {
                        selectQParams[node.Output] = a == b ? a : $"({condition} ? {a} : {b})";
                    }

                    continue;
                }

                if (node.Kind == NodeKind.Module && node.Island)
                {
                    // Float island ([NoQuantize]): the user's module runs in float; its output is observed (with the
                    // global qconfig's activation spec) so that the int8 form can quantize it again.
                    int observer = AddObserver(node.Layer, guard);
                    string islandProperty = QuantizedName(node, node.Layer);
                    string quantizer = Unique(Identifier(node.Layer) + "_quantize", quantizedNames);
                    quantizedNames.Add(quantizer);
                    steps.Add(Step(StepKind.FloatIsland, islandProperty, observer, moduleField: ModuleField()) with { QConfigLookup = string.Empty, IslandQuantizer = quantizer });
                    qparams[node.Output] = observer;
                    continue;
                }

                if (node.Kind == NodeKind.Module)
                {
                    switch (node.Module)
                    {
                        case ModuleKind.QuantStub:
                        {
                            int observer = AddObserver(node.Path, guard);
                            steps.Add(Step(StepKind.Quantize, QuantizedName(node, node.Path), observer, output: input));
                            alias[node.Output] = input;
                            qparams[input] = observer;
                            inRegion = true;
                            continue;
                        }

                        case ModuleKind.DeQuantStub:
                            steps.Add(Step(StepKind.DeQuantize, null, -1, output: input));
                            alias[node.Output] = input;
                            inRegion = false;
                            continue;

                        case ModuleKind.Identity or ModuleKind.Dropout:
                            steps.Add(Step(StepKind.Identity, null, -1, output: input) with { InputQParams = inRegion ? inputQ : -1 });
                            alias[node.Output] = input;
                            if (qparams.TryGetValue(input, out int passed))
                            {
                                qparams[node.Output] = passed;
                            }

                            continue;

                        case ModuleKind.Conv2d or ModuleKind.Linear or ModuleKind.ConvTranspose2d or ModuleKind.BatchNorm2d:
                        {
                            StepKind kind = node.Module switch
                            {
                                ModuleKind.Conv2d => StepKind.Conv2d,
                                ModuleKind.Linear => StepKind.Linear,
                                ModuleKind.ConvTranspose2d => StepKind.ConvTranspose2d,
                                _ => StepKind.BatchNorm2d,
                            };
                            int observer = AddObserver(node.Layer, guard);
                            string floatField = Unique("_" + Identifier(node.Layer), fieldNames);
                            observedNames.Add(floatField);
                            steps.Add(Step(kind, QuantizedName(node, node.Layer), observer, floatField));
                            qparams[node.Output] = observer;
                            continue;
                        }

                        case ModuleKind.ReLU or ModuleKind.Flatten or ModuleKind.MaxPool2d or ModuleKind.AvgPool2d or ModuleKind.AdaptiveAvgPool2d or ModuleKind.Upsample:
                        {
                            StepKind kind = node.Module switch
                            {
                                ModuleKind.ReLU => StepKind.ReLU,
                                ModuleKind.Flatten => StepKind.Flatten,
                                ModuleKind.MaxPool2d => StepKind.MaxPool2d,
                                ModuleKind.AvgPool2d => StepKind.AvgPool2d,
                                ModuleKind.AdaptiveAvgPool2d => StepKind.AdaptiveAvgPool2d,
                                _ => StepKind.Upsample,
                            };
                            steps.Add(Step(kind, QuantizedName(node, node.Layer), -1, moduleField: ModuleField()));
                            PassQParams(node.Output, input);
                            continue;
                        }
                    }

                    continue;
                }

                switch (node.Kind)
                {
                    case NodeKind.Add:
                    {
                        int observer = AddObserver(node.Layer, guard);
                        steps.Add(Step(StepKind.Add, QuantizedName(node, node.Layer), observer));
                        qparams[node.Output] = observer;
                        break;
                    }

                    case NodeKind.Cat:
                    {
                        int observer = AddObserver(node.Layer, guard);
                        steps.Add(Step(StepKind.Cat, QuantizedName(node, node.Layer), observer));
                        qparams[node.Output] = observer;

                        // FX's shared observer: the inputs are quantized with the cat output's qparams.
                        foreach (int catInput in inputs)
                        {
                            _cancellationToken.ThrowIfCancellationRequested();
                            if (qparams.TryGetValue(catInput, out int inputObserver))
                            {
                                observerParent[Find(inputObserver)] = observer;
                            }
                        }

                        break;
                    }

                    case NodeKind.Flatten:
                        steps.Add(Step(StepKind.FunctionalFlatten, QuantizedName(node, node.Layer), -1) with { FlattenStartDim = node.Ints[0], FlattenEndDim = node.Ints[1] });
                        PassQParams(node.Output, input);
                        break;
                    case NodeKind.Reshape:
                        steps.Add(Step(StepKind.Reshape, QuantizedName(node, node.Layer), -1));
                        PassQParams(node.Output, input);
                        break;
                    case NodeKind.Relu:
                        steps.Add(Step(StepKind.FunctionalRelu, QuantizedName(node, node.Layer), -1));
                        PassQParams(node.Output, input);
                        break;
                    case NodeKind.MaxPool2d:
                        steps.Add(Step(StepKind.FunctionalMaxPool2d, QuantizedName(node, node.Layer), -1));
                        PassQParams(node.Output, input);
                        break;
                }

                void PassQParams(int output, int from)
                {
                    if (qparams.TryGetValue(from, out int passed))
                    {
                        qparams[output] = passed;
                    }
                    else if (selectQParams.TryGetValue(from, out string? passedExpression))
                    {
                        selectQParams[output] = passedExpression;
                    }
                }
            }

            // Shared observers (cat): every step uses its set's representative; the others disappear.
            var keep = new List<int>();
            var renumber = new Dictionary<int, int>();
            for (int o = 0; o < observers.Count; o++)
            {
                _cancellationToken.ThrowIfCancellationRequested();
                if (Find(o) == o)
                {
                    renumber[o] = keep.Count;
                    keep.Add(o);
                }
            }

            var shared = new HashSet<int>(Enumerable.Range(0, observers.Count).Where(o => Find(o) != o).Select(Find));
            var finalObservers = keep.Select((o, i) => observers[o] with
            {
                QParamsVariable = "q" + i.ToString(CultureInfo.InvariantCulture),
                Note = shared.Contains(o) ? "Shared by the cat and its inputs: FX quantizes a cat's inputs with its output's qparams." : string.Empty,
            }).ToList();
            int Map(int o) => o < 0 ? -1 : renumber[Find(o)];
            string MapExpression(string e)
            {
                for (int o = observers.Count - 1; o >= 0; o--)
                {
                    _cancellationToken.ThrowIfCancellationRequested();
                    e = e.Replace("#" + o.ToString(CultureInfo.InvariantCulture), finalObservers[Map(o)].QParamsVariable + "!");
                }

                return e;
            }

            // Values numbered in step order (t1, t2, ...), as the user reads the generated forward.
            var number = new Dictionary<int, int> { [0] = 0 };
            foreach (StepPlan step in steps.Where(s => s.Kind is not (StepKind.Quantize or StepKind.DeQuantize or StepKind.Identity)))
            {
                _cancellationToken.ThrowIfCancellationRequested();
                number[step.Output] = number.Count;
            }

            int N(int value) => number[Resolve(value)];
            List<StepPlan> finalSteps = steps.Select(s => s with
            {
                Observer = Map(s.Observer),
                InputQParams = Map(s.InputQParams),
                InputQParamsExpression = MapExpression(s.InputQParamsExpression),
                Input = N(s.Input),
                Inputs = s.Inputs.Select(N).ToEquatableArray(),
                Output = N(s.Output),
            }).ToList();

            return new ModelPlan(
                _spec.Name,
                _spec.TypeParameters,
                _spec.Namespace,
                _spec.ContainingTypes,
                _spec.Backend,
                HintName(),
                finalObservers.ToEquatableArray(),
                finalSteps.ToEquatableArray(),
                N(result),
                _spec.HidesInherited,
                ReturnComment(forward),
                _conditions.ToEquatableArray(),
                modules.ToEquatableArray(),
                _needsIndex,
                _spec.QConfigs,
                _nodes.Where(n => n.FunctionName.Length > 0).Select(n => n.FunctionName).Distinct().OrderBy(n => n, System.StringComparer.Ordinal).ToEquatableArray(),
                _conditionMembers.Distinct().ToEquatableArray());
        }

        /// <summary>
        /// C# resolving a node's qconfig from <c>mapping</c> in Observed's constructor: a module by its path and
        /// type, a functional op by its function name and the module its call is written in (as PyTorch does).
        /// </summary>
        private static string QConfigLookup(Node node) =>
            node.FunctionName.Length > 0
                ? $"mapping.ResolveFunction({Names.Literal(node.ScopePath)}, {Names.Literal(node.FunctionName)}, {Names.Literal(node.ScopeType)})"
                : $"mapping.Resolve({Names.Literal(node.Path)}, {Names.Literal(SimpleTypeName(node.ModuleType))})";

        private static string SimpleTypeName(string typeName)
        {
            string name = typeName.TrimEnd('?');
            int generic = name.IndexOf('<');
            if (generic >= 0)
            {
                name = name.Substring(0, generic);
            }

            int cut = name.LastIndexOfAny(new[] { '.', ':' });
            return cut < 0 ? name : name.Substring(cut + 1);
        }

        private static string Identifier(string path) => path.Replace('.', '_');

        /// <summary>Where forward returns; empty when the return is itself a module call, already commented.</summary>
        private static string ReturnComment(ForwardSpec forward) =>
            forward.Calls.Any(c => c.Line == forward.ReturnLine && c.Text == forward.ReturnText)
                ? string.Empty
                : $"{forward.FileName}({forward.ReturnLine.ToString(CultureInfo.InvariantCulture)}): {forward.ReturnText}";

        private string HintName()
        {
            var parts = new List<string>();
            if (_spec.Namespace is not null)
            {
                parts.Add(_spec.Namespace);
            }

            parts.AddRange(_spec.ContainingTypes.Select(t => t.Name));
            parts.Add(_spec.Name + _spec.TypeParameters);

            // '<', '>' and ',' are not allowed in hint names; arity keeps generic classes apart.
            return string.Join(".", parts.Select(HintSafe)) + ".g.cs";
        }

        private static string HintSafe(string name)
        {
            int open = name.IndexOf('<');
            if (open < 0)
            {
                return name;
            }

            int arity = name.Count(c => c == ',') + 1;
            return name.Substring(0, open) + "`" + arity.ToString(CultureInfo.InvariantCulture);
        }

        private static string Unique(string name, HashSet<string> taken)
        {
            string candidate = name;
            for (int i = 2; taken.Contains(candidate); i++)
            {
                candidate = name + "_" + i.ToString(CultureInfo.InvariantCulture);
            }

            taken.Add(candidate);
            return candidate;
        }

        private static string Quoted(IEnumerable<string> names) => string.Join(", ", names.Select(n => "\"" + n + "\""));

        /// <summary>Member kinds [NoQuantize] can make a float island: one module call the generator runs in float.</summary>
        private static readonly HashSet<ModuleKind> IslandKinds = new()
        {
            ModuleKind.Conv2d, ModuleKind.Linear, ModuleKind.ConvTranspose2d, ModuleKind.BatchNorm2d, ModuleKind.ReLU, ModuleKind.Flatten,
            ModuleKind.MaxPool2d, ModuleKind.AvgPool2d, ModuleKind.AdaptiveAvgPool2d, ModuleKind.Upsample,
            ModuleKind.SubModel, ModuleKind.Sequential,
        };

        /// <summary>Why a [NoQuantize] member of <paramref name="kind"/> cannot be a float island (QG0021).</summary>
        private static string NoQuantizeProblem(ModuleKind kind) => kind switch
        {
            ModuleKind.QuantStub or ModuleKind.DeQuantStub => "QuantStub and DeQuantStub mark the quantized region, they run no op",
            ModuleKind.Identity or ModuleKind.Dropout => "Identity and Dropout run nothing in eval, so there is nothing to keep in float",
            _ => "its module type is not supported",
        };

        /// <summary>
        /// The spec of the [Quantize] sub-module at <paramref name="path"/> to inline, or null after reporting
        /// QG0024 at the class when it cannot be inlined: a class that contains itself (directly, through a
        /// Sequential, or through other classes), nesting deeper than <see cref="MaxDepth"/>, or a child whose
        /// own spec is missing (its parse failed) or has no forward. Each class reports the first such problem once.
        /// </summary>
        private ModelSpec? CannotExpand(string childType, string typeName, string path, int depth, HashSet<string> stack)
        {
            string? problem = null;
            ModelSpec? child = null;
            if (stack.Contains(childType))
            {
                problem = $"'{path}' is a {typeName}, which already encloses it; a module cannot contain itself, directly or through other modules";
            }
            else if (depth >= MaxDepth)
            {
                problem = $"sub-modules nest more than {MaxDepth.ToString(CultureInfo.InvariantCulture)} levels deep at '{path}'";
            }
            else if (!_all.TryGetValue(childType, out child))
            {
                problem = $"its sub-module '{path}' ({typeName}) could not be read; see the diagnostics of {typeName}";
            }
            else if (child.Forward is null)
            {
                problem = $"its sub-module '{path}' ({typeName}) has no forward(Tensor) to inline";
            }

            if (problem is null)
            {
                return child;
            }

            if (!_failed)
            {
                Report(DiagnosticDescriptors.CannotExpand, _spec.Location, _spec.Name, problem);
            }

            _failed = true;
            return null;
        }

        private void Report(Microsoft.CodeAnalysis.DiagnosticDescriptor descriptor, LocationInfo? location, params string[] args) =>
            Diagnostics.Add(DiagnosticInfo.Create(descriptor, location, args));
    }
}
