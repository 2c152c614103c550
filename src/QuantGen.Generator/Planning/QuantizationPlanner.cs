using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using QuantGen.Generator.Diagnostics;
using QuantGen.Generator.Parsing;

namespace QuantGen.Generator.Planning;

/// <summary>
/// <see cref="ModelSpec"/> → <see cref="ModelPlan"/>: applies the [Fuse] groups with PyTorch's eager
/// <c>fuse_modules</c> semantics, finds the quantized region and its quantization points, and checks
/// everything that needs the whole graph. A pure function of its input.
/// </summary>
internal static class QuantizationPlanner
{
    /// <summary>The Conv2d/Linear-headed sequences PyTorch's fuse_modules accepts and the runtime implements.</summary>
    private static readonly ModuleKind[][] SupportedFusions =
    {
        new[] { ModuleKind.Conv2d, ModuleKind.ReLU },
        new[] { ModuleKind.Conv2d, ModuleKind.BatchNorm2d },
        new[] { ModuleKind.Conv2d, ModuleKind.BatchNorm2d, ModuleKind.ReLU },
        new[] { ModuleKind.Linear, ModuleKind.ReLU },
    };

    /// <summary>The plan step of the pipeline; never throws.</summary>
    public static PlanResult Plan(ParseResult parsed)
    {
        if (parsed.Spec is not { } spec)
        {
            return new PlanResult(null, parsed.Diagnostics);
        }

        return Guard.Run(
            spec.Name,
            spec.Location,
            () => Plan(spec, parsed.Diagnostics),
            internalError => new PlanResult(null, parsed.Diagnostics.Concat(internalError).ToEquatableArray()));
    }

    /// <summary>Plans a parsed model; <paramref name="parseDiagnostics"/> are carried into the result.</summary>
    public static PlanResult Plan(ModelSpec spec, EquatableArray<DiagnosticInfo> parseDiagnostics)
    {
        var planner = new Planner(spec, parseDiagnostics);
        ModelPlan? plan = planner.Run();
        return new PlanResult(plan, planner.Diagnostics.ToEquatableArray());
    }

    /// <summary>"Conv2d+BatchNorm2d+ReLU" style names of a sequence.</summary>
    internal static string SequenceName(IEnumerable<ModuleKind> kinds) => string.Join("+", kinds);

    private sealed class Planner
    {
        private readonly ModelSpec _spec;
        private readonly Dictionary<string, MemberSpec> _members = new();
        private readonly List<FuseGroupSpec> _groups = new();
        private readonly Dictionary<string, FuseGroupSpec> _groupOf = new();

        public Planner(ModelSpec spec, EquatableArray<DiagnosticInfo> parseDiagnostics)
        {
            _spec = spec;
            Diagnostics = new List<DiagnosticInfo>(parseDiagnostics);
            foreach (MemberSpec member in spec.Members)
            {
                _members[member.Name] = member;
            }
        }

        public List<DiagnosticInfo> Diagnostics { get; }

        private bool HasErrors => Diagnostics.Any(d => d.IsError);

        public ModelPlan? Run()
        {
            CheckFuseGroups();
            if (_spec.Forward is not { } forward || HasErrors)
            {
                return null;
            }

            CheckCalls(forward);
            if (HasErrors)
            {
                return null;
            }

            List<int> chain = Chain(forward);
            CheckFusionsInForward(forward);
            (int regionStart, int regionEnd) = CheckRegion(forward, chain);
            return HasErrors ? null : Build(forward, chain, regionStart, regionEnd);
        }

        /// <summary>QG0003, QG0013, QG0005: checks that need only the members.</summary>
        private void CheckFuseGroups()
        {
            foreach (FuseGroupSpec group in _spec.FuseGroups)
            {
                bool valid = true;
                var seen = new HashSet<string>();
                for (int i = 0; i < group.Members.Count; i++)
                {
                    string name = group.Members[i];
                    LocationInfo? location = i < group.ArgumentLocations.Count ? group.ArgumentLocations[i] : group.Location;
                    if (!_members.ContainsKey(name))
                    {
                        Report(DiagnosticDescriptors.FuseUnknownMember, location, _spec.Name, name);
                        valid = false;
                    }
                    else if (!seen.Add(name) || _groupOf.ContainsKey(name))
                    {
                        Report(DiagnosticDescriptors.FuseMemberRepeated, location, _spec.Name, name);
                        valid = false;
                    }
                }

                if (!valid)
                {
                    continue;
                }

                ModuleKind[] kinds = group.Members.Select(m => _members[m].Kind).ToArray();
                if (!SupportedFusions.Any(s => s.SequenceEqual(kinds)))
                {
                    string described = kinds.Length switch
                    {
                        0 => "empty",
                        1 => "a single module, " + kinds[0],
                        _ => SequenceName(kinds),
                    };
                    Report(DiagnosticDescriptors.UnsupportedFusion, group.Location, _spec.Name, Quoted(group.Members), described);
                    continue;
                }

                _groups.Add(group);
                foreach (string name in group.Members)
                {
                    _groupOf[name] = group;
                }
            }
        }

        /// <summary>QG0009 (a module called twice), QG0006 (a result nobody uses).</summary>
        private void CheckCalls(ForwardSpec forward)
        {
            var called = new HashSet<string>();
            var reportedTwice = new HashSet<string>();
            foreach (ForwardCall call in forward.Calls)
            {
                if (!called.Add(call.Member) && reportedTwice.Add(call.Member))
                {
                    Report(DiagnosticDescriptors.ModuleCalledTwice, call.Location, _spec.Name, call.Member);
                }
            }

            int[] users = Users(forward);
            for (int i = 0; i < forward.Calls.Count; i++)
            {
                if (users[i + 1] == 0)
                {
                    ForwardCall call = forward.Calls[i];
                    Report(DiagnosticDescriptors.UnsupportedForwardStatement, call.Location, call.Text, _spec.Name, $"the result of '{call.Member}' is never used");
                }
            }
        }

        /// <summary>How many calls (and the return) read each value.</summary>
        private static int[] Users(ForwardSpec forward)
        {
            var users = new int[forward.Calls.Count + 1];
            foreach (ForwardCall call in forward.Calls)
            {
                users[call.Input]++;
            }

            users[forward.Result]++;
            return users;
        }

        /// <summary>Indices of the calls from forward's input to its result, in order.</summary>
        private static List<int> Chain(ForwardSpec forward)
        {
            // Each call reads one value and (after CheckCalls) each result is read exactly once, so the
            // values form a single path from the input to the returned value.
            var chain = new List<int>();
            for (int value = forward.Result; value != 0; value = forward.Calls[value - 1].Input)
            {
                chain.Insert(0, value - 1);
            }

            return chain;
        }

        /// <summary>QG0004: each fused module reads the previous one's output, which nothing else reads.</summary>
        private void CheckFusionsInForward(ForwardSpec forward)
        {
            var callOf = new Dictionary<string, int>();
            for (int i = 0; i < forward.Calls.Count; i++)
            {
                callOf[forward.Calls[i].Member] = i;
            }

            int[] users = Users(forward);
            foreach (FuseGroupSpec group in _groups)
            {
                string? missing = group.Members.FirstOrDefault(m => !callOf.ContainsKey(m));
                if (missing is not null)
                {
                    Report(DiagnosticDescriptors.FuseNotConsecutive, group.Location, _spec.Name, Quoted(group.Members), $"'{missing}' is never called in forward");
                    continue;
                }

                for (int i = 1; i < group.Members.Count; i++)
                {
                    int previous = callOf[group.Members[i - 1]];
                    ForwardCall call = forward.Calls[callOf[group.Members[i]]];
                    if (call.Input != previous + 1)
                    {
                        Report(DiagnosticDescriptors.FuseNotConsecutive, call.Location, _spec.Name, Quoted(group.Members), $"'{group.Members[i]}' does not take the output of '{group.Members[i - 1]}'");
                        break;
                    }

                    if (users[previous + 1] > 1)
                    {
                        Report(DiagnosticDescriptors.FuseNotConsecutive, call.Location, _spec.Name, Quoted(group.Members), $"the output of '{group.Members[i - 1]}' is also used elsewhere");
                        break;
                    }
                }
            }
        }

        /// <summary>
        /// QG0011 (stub order), QG0010 (work outside the region), QG0007 (unsupported module), QG0012
        /// (unfused BatchNorm). Returns the chain positions [start, end) of the quantized region.
        /// </summary>
        private (int Start, int End) CheckRegion(ForwardSpec forward, List<int> chain)
        {
            int quantStub = -1, deQuantStub = -1;
            for (int p = 0; p < chain.Count; p++)
            {
                ForwardCall call = forward.Calls[chain[p]];
                switch (_members[call.Member].Kind)
                {
                    case ModuleKind.QuantStub when quantStub >= 0:
                        Report(DiagnosticDescriptors.StubOrder, call.Location, _spec.Name, call.Member, $"is a second QuantStub call (after '{forward.Calls[chain[quantStub]].Member}')");
                        break;
                    case ModuleKind.QuantStub when deQuantStub >= 0:
                        Report(DiagnosticDescriptors.StubOrder, call.Location, _spec.Name, call.Member, $"is called after the DeQuantStub '{forward.Calls[chain[deQuantStub]].Member}'");
                        break;
                    case ModuleKind.QuantStub:
                        quantStub = p;
                        break;
                    case ModuleKind.DeQuantStub when deQuantStub >= 0:
                        Report(DiagnosticDescriptors.StubOrder, call.Location, _spec.Name, call.Member, $"is a second DeQuantStub call (after '{forward.Calls[chain[deQuantStub]].Member}')");
                        break;
                    case ModuleKind.DeQuantStub:
                        deQuantStub = p;
                        break;
                }
            }

            // Without a QuantStub the region starts at forward's input; without a DeQuantStub it ends at
            // the return (FX's behaviour for a model without stubs).
            int start = quantStub + 1;
            int end = deQuantStub >= 0 ? deQuantStub : chain.Count;
            for (int p = 0; p < chain.Count; p++)
            {
                ForwardCall call = forward.Calls[chain[p]];
                MemberSpec member = _members[call.Member];
                bool inside = p >= start && p < end;
                switch (member.Kind)
                {
                    case ModuleKind.QuantStub or ModuleKind.DeQuantStub or ModuleKind.Identity:
                        break;
                    case ModuleKind.Unsupported:
                        Report(DiagnosticDescriptors.UnsupportedModuleType, call.Location, _spec.Name, member.Name, member.TypeName);
                        break;
                    case var _ when !inside:
                        string where = p < start
                            ? $"before the QuantStub '{forward.Calls[chain[quantStub]].Member}'"
                            : $"after the DeQuantStub '{forward.Calls[chain[deQuantStub]].Member}'";
                        Report(DiagnosticDescriptors.OutsideQuantizedRegion, call.Location, _spec.Name, member.Name, where);
                        break;
                    case ModuleKind.BatchNorm2d when !_groupOf.ContainsKey(member.Name):
                        Report(DiagnosticDescriptors.BatchNormNotFused, call.Location, _spec.Name, member.Name);
                        break;
                }
            }

            return (start, end);
        }

        private ModelPlan Build(ForwardSpec forward, List<int> chain, int regionStart, int regionEnd)
        {
            var quantizedNames = new HashSet<string>(_members.Keys) { "forward" };
            var observedNames = new HashSet<string>(_members.Keys.Select(m => m + "_activation")) { "_model", "QConfig", "forward", "Convert", "Dispose" };
            var observers = new List<ObserverPlan>();
            var steps = new List<StepPlan>();
            string file = forward.FileName;
            int current = 0;
            int nextValue = 1;
            int currentQParams = -1;

            int AddObserver(string layer, bool modelInput = false)
            {
                // Member-derived names are unique already (and reserved in observedNames); only the model
                // input's observer can meet a member's.
                string property = modelInput ? Unique(layer + "_activation", observedNames) : layer + "_activation";

                observers.Add(new ObserverPlan(property, _spec.Name + "." + layer, "q" + observers.Count.ToString(CultureInfo.InvariantCulture)));
                return observers.Count - 1;
            }

            string Comment(ForwardCall call, string suffix = "") =>
                $"{file}({call.Line.ToString(CultureInfo.InvariantCulture)}): {call.Text}{suffix}";

            if (regionStart == 0)
            {
                // No QuantStub: the model input is the first quantization point.
                string property = Unique("input", quantizedNames);
                int observer = AddObserver("input", modelInput: true);
                steps.Add(new StepPlan(StepKind.Quantize, string.Empty, "input", property, null, null, false, observer, -1, 0, 0, null, null,
                    new[] { $"{file}: forward's input (no QuantStub, so the whole forward is quantized)" }.ToEquatableArray()));
                currentQParams = observer;
            }

            for (int p = 0; p < chain.Count; p++)
            {
                ForwardCall call = forward.Calls[chain[p]];
                MemberSpec member = _members[call.Member];
                bool inside = p >= regionStart && p < regionEnd;
                _groupOf.TryGetValue(member.Name, out FuseGroupSpec? group);
                if (group is not null && group.Members[0] != member.Name)
                {
                    // Folded into the group's head, which was emitted already.
                    continue;
                }

                switch (member.Kind)
                {
                    case ModuleKind.QuantStub:
                    {
                        int observer = AddObserver(member.Name);
                        steps.Add(new StepPlan(StepKind.Quantize, member.Name, member.Name, member.Name, null, null, false, observer, -1, current, current, null, null, new[] { Comment(call) }.ToEquatableArray()));
                        currentQParams = observer;
                        break;
                    }

                    case ModuleKind.DeQuantStub:
                        steps.Add(new StepPlan(StepKind.DeQuantize, member.Name, member.Name, null, null, null, false, -1, currentQParams, current, current, null, null, new[] { Comment(call) }.ToEquatableArray()));
                        currentQParams = -1;
                        break;

                    case ModuleKind.Identity:
                        steps.Add(new StepPlan(StepKind.Identity, member.Name, member.Name, null, null, null, false, -1, inside ? currentQParams : -1, current, current, null, null, new[] { Comment(call) }.ToEquatableArray()));
                        break;

                    case ModuleKind.ReLU:
                    case ModuleKind.Flatten:
                    {
                        StepKind kind = member.Kind == ModuleKind.ReLU ? StepKind.ReLU : StepKind.Flatten;
                        int output = nextValue++;
                        steps.Add(new StepPlan(kind, member.Name, member.Name, member.Name, null, null, false, -1, currentQParams, current, output, member.FlattenStartDim, member.FlattenEndDim, new[] { Comment(call) }.ToEquatableArray()));
                        current = output;
                        break;
                    }

                    case ModuleKind.Conv2d:
                    case ModuleKind.Linear:
                    {
                        var comments = new List<string> { Comment(call) };
                        string? batchNorm = null;
                        bool relu = false;
                        var fusedMembers = new List<string>();
                        if (group is not null)
                        {
                            for (int i = 1; i < group.Members.Count; i++)
                            {
                                MemberSpec fused = _members[group.Members[i]];
                                batchNorm = fused.Kind == ModuleKind.BatchNorm2d ? fused.Name : batchNorm;
                                relu |= fused.Kind == ModuleKind.ReLU;
                                fusedMembers.Add(fused.Name);
                                comments.Add(Comment(forward.Calls[chain[p + i]], $" (fused into {member.Name})"));
                            }
                        }

                        int observer = AddObserver(member.Name);
                        int output = nextValue++;
                        steps.Add(new StepPlan(
                            member.Kind == ModuleKind.Conv2d ? StepKind.Conv2d : StepKind.Linear,
                            member.Name,
                            member.Name,
                            member.Name,
                            Unique("_" + member.Name, observedNames),
                            batchNorm,
                            relu,
                            observer,
                            currentQParams,
                            current,
                            output,
                            null,
                            null,
                            comments.ToEquatableArray(),
                            fusedMembers.ToEquatableArray()));
                        current = output;
                        currentQParams = observer;
                        break;
                    }
                }
            }

            return new ModelPlan(
                _spec.Name,
                _spec.TypeParameters,
                _spec.Namespace,
                _spec.ContainingTypes,
                _spec.Backend,
                HintName(),
                observers.ToEquatableArray(),
                steps.ToEquatableArray(),
                current,
                _spec.HidesInherited,
                ReturnComment(forward));
        }

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

        private void Report(Microsoft.CodeAnalysis.DiagnosticDescriptor descriptor, LocationInfo? location, params string[] args) =>
            Diagnostics.Add(DiagnosticInfo.Create(descriptor, location, args));
    }
}
