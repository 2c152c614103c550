using System.Collections.Generic;
using System.Linq;

namespace QuantGen.Generator.Planning;

/// <summary>
/// The int8 forward's buffer plan: which activation slot each op writes its output into, so that a steady-state
/// forward allocates nothing. The generator knows every value's lifetime (from the step that writes it to the last
/// step that reads it), so values whose lifetimes do not overlap share a slot, as interval colouring does.
/// </summary>
internal static class BufferPlanner
{
    /// <summary>The plan: the slot of each step's output (-1 when the step writes into no slot) and the slot count.</summary>
    /// <param name="Slots">Per step of <see cref="ModelPlan.Steps"/>, its output's slot or -1.</param>
    /// <param name="Count">How many slots the model needs.</param>
    internal sealed record BufferPlan(int[] Slots, int Count);

    /// <summary>Whether the int8 form runs a step through a layer's slot overload.</summary>
    public static bool WritesIntoSlot(StepPlan step) => step.Kind switch
    {
        // Float islands and fallbacks leave int8 (they allocate); selects, identities and stubs write nothing.
        StepKind.FloatIsland or StepKind.Select or StepKind.Identity or StepKind.DeQuantize => false,
        _ => true,
    };

    public static BufferPlan Plan(ModelPlan plan)
    {
        IReadOnlyList<StepPlan> steps = plan.Steps;
        int count = steps.Count;

        // A select's value is one of its inputs: reading it reads both (which one is decided at construction).
        var aliases = new Dictionary<int, int[]>();
        foreach (StepPlan step in steps.Where(s => s.Kind == StepKind.Select))
        {
            aliases[step.Output] = step.Inputs.SelectMany(v => aliases.TryGetValue(v, out int[]? a) ? a : new[] { v }).ToArray();
        }

        IEnumerable<int> Resolve(int value) => aliases.TryGetValue(value, out int[]? a) ? a : new[] { value };

        var lastRead = new Dictionary<int, int>();
        for (int i = 0; i < count; i++)
        {
            StepPlan step = steps[i];
            IEnumerable<int> reads = step.Kind == StepKind.Quantize ? Enumerable.Empty<int>() : step.Inputs.Count > 0 ? step.Inputs : new[] { step.Input };
            foreach (int value in reads.SelectMany(Resolve))
            {
                lastRead[value] = i;
            }
        }

        // The result leaves forward: it gets a tensor of its own (the caller keeps it across calls).
        var returned = new HashSet<int>(Resolve(plan.Result));

        var slots = new int[count];
        var freeAt = new List<int>(); // per slot: the step index from which it is free again
        for (int i = 0; i < count; i++)
        {
            StepPlan step = steps[i];
            slots[i] = -1;
            if (!WritesIntoSlot(step) || returned.Contains(step.Output))
            {
                continue;
            }

            // A value nobody reads still needs somewhere to go; it is dead right after its step.
            int end = lastRead.TryGetValue(step.Output, out int read) ? read : i;
            int slot = freeAt.FindIndex(free => free <= i);
            if (slot < 0)
            {
                slot = freeAt.Count;
                freeAt.Add(0);
            }

            // Free again only after the last reader ran: a reader's output never shares its input's slot.
            freeAt[slot] = end + 1;
            slots[i] = slot;
        }

        return new BufferPlan(slots, freeAt.Count);
    }
}
