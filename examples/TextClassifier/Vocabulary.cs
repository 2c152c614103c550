using System;
using System.Collections.Generic;
using System.Linq;

namespace TextClassifier;

/// <summary>
/// Lower-case word tokens and a vocabulary of the most frequent ones: index 0 is padding, 1 an unknown word, 2.. the
/// words by falling frequency (ties in ordinal order, so the same texts always give the same indices).
/// </summary>
public sealed class Vocabulary
{
    /// <summary>The padding index (the models' embedding keeps this row at zero).</summary>
    public const int Padding = 0;

    /// <summary>The index of a word outside the vocabulary.</summary>
    public const int Unknown = 1;

    private readonly Dictionary<string, int> _indices;

    private Vocabulary(string[] words)
    {
        Words = words;
        _indices = new Dictionary<string, int>(words.Length, StringComparer.Ordinal);
        for (int i = 0; i < words.Length; i++)
        {
            _indices[words[i]] = i + 2;
        }
    }

    /// <summary>The known words; word <c>i</c> has index <c>i + 2</c>.</summary>
    public IReadOnlyList<string> Words { get; }

    /// <summary>Embedding rows needed: the known words plus padding and unknown.</summary>
    public int Size => Words.Count + 2;

    /// <summary>
    /// Splits <paramref name="text"/> into tokens: maximal runs of letters and digits, lower-cased (invariant
    /// culture); everything else (spaces, punctuation, quotes, hyphens) separates tokens.
    /// </summary>
    public static List<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<string>();
        int start = -1;
        for (int i = 0; i <= text.Length; i++)
        {
            bool inWord = i < text.Length && char.IsLetterOrDigit(text[i]);
            if (inWord && start < 0)
            {
                start = i;
            }
            else if (!inWord && start >= 0)
            {
                tokens.Add(text[start..i].ToLowerInvariant());
                start = -1;
            }
        }

        return tokens;
    }

    /// <summary>The <paramref name="maxWords"/> most frequent tokens of <paramref name="texts"/>.</summary>
    /// <param name="texts">The training texts.</param>
    /// <param name="maxWords">Words to keep (the vocabulary then has <c>maxWords + 2</c> indices).</param>
    public static Vocabulary Build(IEnumerable<string> texts, int maxWords)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWords, 1);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string text in texts)
        {
            foreach (string token in Tokenize(text))
            {
                counts[token] = counts.GetValueOrDefault(token) + 1;
            }
        }

        string[] words = counts
            .OrderByDescending(pair => pair.Value)
            .ThenBy(pair => pair.Key, StringComparer.Ordinal)
            .Take(maxWords)
            .Select(pair => pair.Key)
            .ToArray();
        return new Vocabulary(words);
    }

    /// <summary>The index of <paramref name="token"/> (already lower-cased), or <see cref="Unknown"/>.</summary>
    public int IndexOf(string token) => _indices.TryGetValue(token, out int index) ? index : Unknown;

    /// <summary>
    /// The token indices of <paramref name="text"/>, cut to the first <paramref name="maxLength"/>; a text without
    /// any token becomes one <see cref="Unknown"/> (a sequence is never empty).
    /// </summary>
    public long[] Encode(string text, int maxLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        List<string> tokens = Tokenize(text);
        if (tokens.Count == 0)
        {
            return [Unknown];
        }

        int length = Math.Min(tokens.Count, maxLength);
        var indices = new long[length];
        for (int i = 0; i < length; i++)
        {
            indices[i] = IndexOf(tokens[i]);
        }

        return indices;
    }
}

/// <summary>Encoded texts and their labels, ready to batch.</summary>
/// <param name="Sequences">Token indices per text (1..maxLength each, no padding).</param>
/// <param name="Labels">The label of each text.</param>
public sealed record EncodedSplit(long[][] Sequences, int[] Labels)
{
    /// <summary>Number of texts.</summary>
    public int Count => Labels.Length;

    /// <summary>Encodes each synset's <see cref="WordNetSynset.Definition"/>, labelled by its lexicographer file.</summary>
    public static EncodedSplit FromSynsets(IReadOnlyList<WordNetSynset> synsets, Vocabulary vocabulary, int maxLength)
    {
        var sequences = new long[synsets.Count][];
        var labels = new int[synsets.Count];
        for (int i = 0; i < synsets.Count; i++)
        {
            sequences[i] = vocabulary.Encode(synsets[i].Definition, maxLength);
            labels[i] = synsets[i].LexFile;
        }

        return new EncodedSplit(sequences, labels);
    }

    /// <summary>
    /// The texts at <paramref name="indices"/> as one padded batch: row-major [count, longest] token indices (padding
    /// <see cref="Vocabulary.Padding"/> after each text), the lengths, and the longest length.
    /// </summary>
    public (long[] Tokens, int[] Lengths, int MaxLength) Batch(ReadOnlySpan<int> indices)
    {
        int longest = 0;
        foreach (int i in indices)
        {
            longest = Math.Max(longest, Sequences[i].Length);
        }

        var tokens = new long[indices.Length * longest];
        var lengths = new int[indices.Length];
        for (int b = 0; b < indices.Length; b++)
        {
            long[] sequence = Sequences[indices[b]];
            sequence.CopyTo(tokens, b * longest);
            lengths[b] = sequence.Length;
        }

        return (tokens, lengths, longest);
    }
}
