using System;

namespace QuantGen.Dynamic;

/// <summary>
/// Float working memory of the attention and encoder layers during one call — the packed q/k/v rows, the attended rows,
/// the transposed keys, the scores — held per thread, as <see cref="Modules.LayerScratch"/> holds the int8 layers', so
/// a batch-1 call allocates and zeroes none of it (at a few microseconds a layer, that was a tenth of a small encoder
/// layer's time) and many threads run one layer at once without sharing.
/// </summary>
/// <remarks>
/// Each user takes its own <see cref="Slot"/>: the encoder layer calls the attention, so their buffers must not
/// overlap. Contents are unspecified on return; a caller that needs zeros clears what it uses.
/// </remarks>
internal sealed class AttentionScratch
{
    [ThreadStatic]
    private static AttentionScratch? t_current;

    private readonly float[][] _buffers = new float[(int)Slot.Count][];

    private AttentionScratch()
    {
        Array.Fill(_buffers, Array.Empty<float>());
    }

    /// <summary>The buffers, one per use.</summary>
    public enum Slot
    {
        /// <summary>Attention: the packed projection of q, k and v.</summary>
        Projected,

        /// <summary>Attention: the heads' outputs before out_proj.</summary>
        Attended,

        /// <summary>Attention: one head's keys, transposed.</summary>
        KeysByDim,

        /// <summary>Attention: one head's values.</summary>
        Values,

        /// <summary>Attention: one query's scores.</summary>
        Scores,

        /// <summary>Attention: one query's output.</summary>
        Target,

        /// <summary>Attention: one query, scaled.</summary>
        Query,

        /// <summary>Encoder layer: the feed-forward's hidden rows.</summary>
        Hidden,

        /// <summary>How many slots there are.</summary>
        Count,
    }

    /// <summary>This thread's scratch.</summary>
    public static AttentionScratch Current => t_current ??= new AttentionScratch();

    /// <summary>The slot's array, at least <paramref name="length"/> long (longer when an earlier call needed more).</summary>
    public float[] Floats(Slot slot, int length)
    {
        ref float[] buffer = ref _buffers[(int)slot];
        if (buffer.Length < length)
        {
            buffer = new float[length];
        }

        return buffer;
    }
}
