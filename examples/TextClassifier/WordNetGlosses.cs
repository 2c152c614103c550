using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;

namespace TextClassifier;

/// <summary>
/// One synset line of a WordNet 3.0 data file (<c>data.noun</c>, <c>data.verb</c>, <c>data.adj</c>, <c>data.adv</c>), as
/// wndb(5WN) describes it: <c>synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt [ptr...] [frames...] | gloss</c>.
/// </summary>
/// <param name="Offset">The synset's byte offset in its file (its identifier within a part of speech).</param>
/// <param name="LexFile">The lexicographer file number, 0..44 (<see cref="WordNetGlosses.LexNames"/>): the label.</param>
/// <param name="SynsetType">n (noun), v (verb), a (adjective), s (adjective satellite) or r (adverb).</param>
/// <param name="Words">The synset's words, as written in the file (underscores for spaces, adjective markers like (p) kept).</param>
/// <param name="Gloss">Everything after <c>" | "</c>: the definition, then example sentences in double quotes.</param>
public sealed record WordNetSynset(long Offset, int LexFile, char SynsetType, IReadOnlyList<string> Words, string Gloss)
{
    /// <summary>
    /// The definition alone: the gloss up to its first example (<c>; "</c>), which is the text the classifier reads.
    /// The examples are left out because they usually quote the synset's own word in a sentence, which makes the
    /// part of speech (and so a third of the label) too easy.
    /// </summary>
    public string Definition
    {
        get
        {
            int example = Gloss.IndexOf("; \"", StringComparison.Ordinal);
            string definition = (example >= 0 ? Gloss[..example] : Gloss).Trim();
            return definition.Length > 0 ? definition : Gloss;
        }
    }
}

/// <summary>
/// WordNet 3.0's glosses labelled by their lexicographer file (noun.animal, verb.motion, adj.all... 45 files), read
/// from the data files Debian's <c>wordnet-base</c> package installs in <see cref="DefaultDirectory"/>. Every tenth synset
/// (in file order: nouns, verbs, adjectives, adverbs) is held out as the test split; the rest is the training split.
/// </summary>
public sealed class WordNetGlosses
{
    /// <summary>Where Debian's package puts the data files.</summary>
    public const string DefaultDirectory = "/usr/share/wordnet";

    /// <summary>The Debian package that provides the files.</summary>
    public const string DebianPackage = "wordnet-base";

    /// <summary>Environment variable that overrides <see cref="DefaultDirectory"/>.</summary>
    public const string DirectoryVariable = "WORDNET_DIR";

    /// <summary>The data files read, in this order.</summary>
    public static readonly string[] FileNames = ["data.noun", "data.verb", "data.adj", "data.adv"];

    /// <summary>
    /// Lexicographer file names by number, from lexnames(5WN) (WordNet 3.0). Debian's package ships the man page but
    /// not WordNet's <c>lexnames</c> file itself, so the table is written here.
    /// </summary>
    public static readonly string[] LexNames =
    [
        "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
        "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
        "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
        "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
        "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition", "verb.consumption",
        "verb.contact", "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
        "verb.social", "verb.stative", "verb.weather", "adj.ppl",
    ];

    /// <summary>Every this-many-th synset (the last of each group) goes to the test split.</summary>
    public const int TestEvery = 10;

    private WordNetGlosses(IReadOnlyList<WordNetSynset> train, IReadOnlyList<WordNetSynset> test, string directory)
    {
        Train = train;
        Test = test;
        Directory = directory;
    }

    /// <summary>Number of labels (lexicographer files).</summary>
    public static int ClassCount => LexNames.Length;

    /// <summary>The training synsets (nine in ten).</summary>
    public IReadOnlyList<WordNetSynset> Train { get; }

    /// <summary>The held-out synsets (one in ten).</summary>
    public IReadOnlyList<WordNetSynset> Test { get; }

    /// <summary>The directory the files were read from.</summary>
    public string Directory { get; }

    /// <summary>
    /// The directory to read: <paramref name="directory"/> if given, else <c>$WORDNET_DIR</c>, else <see cref="DefaultDirectory"/>.
    /// </summary>
    public static string ResolveDirectory(string? directory = null)
    {
        if (!string.IsNullOrEmpty(directory))
        {
            return directory;
        }

        string? fromEnvironment = Environment.GetEnvironmentVariable(DirectoryVariable);
        return string.IsNullOrEmpty(fromEnvironment) ? DefaultDirectory : fromEnvironment;
    }

    /// <summary>Reads the four data files and splits them.</summary>
    /// <param name="directory">Directory with the data files; null for <see cref="ResolveDirectory"/>.</param>
    /// <param name="keepEvery">Keep only every this-many-th synset before splitting (tests read a slice); 1 for all.</param>
    /// <exception cref="FileNotFoundException">A data file is missing; the message names the Debian package.</exception>
    /// <exception cref="InvalidDataException">A line that is not a synset line (the message names the file and line).</exception>
    public static WordNetGlosses Load(string? directory = null, int keepEvery = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keepEvery, 1);
        string root = ResolveDirectory(directory);
        var train = new List<WordNetSynset>();
        var test = new List<WordNetSynset>();
        long index = 0;
        foreach (string fileName in FileNames)
        {
            string path = Path.Combine(root, fileName);
            if (!File.Exists(path))
            {
                throw new FileNotFoundException(
                    $"WordNet: {path} not found. The glosses come from Debian's {DebianPackage} package, which installs " +
                    $"{string.Join(", ", FileNames)} in {DefaultDirectory}: run 'sudo apt-get install {DebianPackage}', " +
                    $"or point --data (or ${DirectoryVariable}) at a directory holding them.",
                    path);
            }

            int lineNumber = 0;
            foreach (string line in File.ReadLines(path))
            {
                lineNumber++;
                if (line.StartsWith("  ", StringComparison.Ordinal))
                {
                    continue; // the licence header: every line of it starts with two spaces
                }

                WordNetSynset synset = ParseLine(line, $"{path}:{lineNumber}");
                if (index++ % keepEvery != 0)
                {
                    continue;
                }

                long kept = (index - 1) / keepEvery;
                (kept % TestEvery == TestEvery - 1 ? test : train).Add(synset);
            }
        }

        return new WordNetGlosses(train, test, root);
    }

    /// <summary>Parses one synset line (wndb(5WN)); the pointers and verb frames are checked for count but not kept.</summary>
    /// <param name="line">The line, without its newline.</param>
    /// <param name="where">What to call the line in errors (file and line number).</param>
    /// <exception cref="InvalidDataException">The line does not follow the format (the message says which field).</exception>
    public static WordNetSynset ParseLine(string line, string where = "WordNet line")
    {
        ArgumentNullException.ThrowIfNull(line);
        int bar = line.IndexOf(" | ", StringComparison.Ordinal);
        string fieldsText = bar >= 0 ? line[..bar] : line;
        string gloss = bar >= 0 ? line[(bar + 3)..].TrimEnd() : string.Empty;
        string[] fields = fieldsText.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int at = 0;
        string Next(string what) => at < fields.Length
            ? fields[at++]
            : throw new InvalidDataException($"{where}: the line ends before {what} (field {at + 1}): '{Shorten(line)}'.");

        long offset = ParseNumber(Next("synset_offset"), NumberStyles.None, "synset_offset", where);
        int lexFile = (int)ParseNumber(Next("lex_filenum"), NumberStyles.None, "lex_filenum", where);
        if (lexFile >= LexNames.Length)
        {
            throw new InvalidDataException($"{where}: lex_filenum {lexFile} is not a lexicographer file (0..{LexNames.Length - 1}).");
        }

        string type = Next("ss_type");
        if (type.Length != 1 || "nvasr".IndexOf(type[0], StringComparison.Ordinal) < 0)
        {
            throw new InvalidDataException($"{where}: ss_type '{type}' is not one of n, v, a, s, r.");
        }

        int wordCount = (int)ParseNumber(Next("w_cnt"), NumberStyles.AllowHexSpecifier, "w_cnt (hexadecimal)", where);
        var words = new string[wordCount];
        for (int w = 0; w < wordCount; w++)
        {
            words[w] = Next($"word {w + 1} of {wordCount}");
            _ = ParseNumber(Next($"lex_id of word {w + 1}"), NumberStyles.AllowHexSpecifier, "lex_id", where);
        }

        int pointerCount = (int)ParseNumber(Next("p_cnt"), NumberStyles.None, "p_cnt", where);
        for (int p = 0; p < pointerCount; p++)
        {
            for (int part = 0; part < 4; part++)
            {
                Next($"pointer {p + 1} of {pointerCount}");
            }
        }

        if (type[0] == 'v' && at < fields.Length)
        {
            int frameCount = (int)ParseNumber(Next("f_cnt"), NumberStyles.None, "f_cnt", where);
            for (int f = 0; f < frameCount; f++)
            {
                for (int part = 0; part < 3; part++)
                {
                    Next($"frame {f + 1} of {frameCount}");
                }
            }
        }

        if (at != fields.Length || bar < 0)
        {
            throw new InvalidDataException($"{where}: expected ' | ' and the gloss after {at} fields, got '{Shorten(line)}'.");
        }

        return new WordNetSynset(offset, lexFile, type[0], words, gloss);
    }

    private static long ParseNumber(string text, NumberStyles style, string what, string where) =>
        long.TryParse(text, style, CultureInfo.InvariantCulture, out long value)
            ? value
            : throw new InvalidDataException($"{where}: {what} '{text}' is not a number.");

    private static string Shorten(string line) => line.Length <= 120 ? line : line[..120] + "...";
}
