using System.Globalization;
using System.Linq;
using System.Text;

namespace QuantGen.Generator.Planning;

/// <summary>
/// The identity of a planned graph: a hash of everything that decides what the int8 model's layers are and how
/// they connect. A <c>.qgen</c> file records it, so loading into a model whose code changed is refused.
/// </summary>
internal static class GraphIdentity
{
    /// <summary>16 hex digits (FNV-1a, 64-bit) of the plan's canonical description; stable across runs and machines.</summary>
    public static string Hash(ModelPlan plan)
    {
        var text = new StringBuilder();
        text.Append(plan.Namespace).Append('.').Append(plan.ClassName).Append(plan.TypeParameters).Append('|').Append(plan.Backend).Append('\n');
        foreach (StepPlan step in plan.Steps)
        {
            text.Append(I((int)step.Kind)).Append('|').Append(step.Layer).Append('|').Append(step.Member)
                .Append('|').Append(step.QuantizedProperty).Append('|').Append(step.BatchNormMember)
                .Append('|').Append(step.Relu ? '1' : '0').Append('|').Append(I(step.Observer))
                .Append('|').Append(I(step.Input)).Append('>').Append(I(step.Output))
                .Append('|').Append(string.Join(",", step.Inputs.Select(I)))
                .Append('|').Append(string.Join(",", step.Ints.Select(I)))
                .Append('|').Append(string.Join(",", step.FusedMembers))
                .Append('|').Append(step.FlattenStartDim is int start ? I(start) : "-").Append(',').Append(step.FlattenEndDim is int end ? I(end) : "-")
                .Append('|').Append(step.Guard).Append('|').Append(step.IslandQuantizer).Append('\n');
        }

        text.Append(I(plan.Result)).Append('|').Append(I(plan.Observers.Count)).Append('|').Append(I(plan.Conditions.Count));

        ulong hash = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text.ToString()))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }

        return hash.ToString("x16", CultureInfo.InvariantCulture);
    }

    // Culture-free: some cultures write negative numbers with another minus sign.
    private static string I(int value) => value.ToString(CultureInfo.InvariantCulture);
}
