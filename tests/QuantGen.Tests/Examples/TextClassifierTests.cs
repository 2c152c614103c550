using System;
using System.IO;
using System.Linq;
using TextClassifier;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace QuantGen.Tests.Examples;

/// <summary>
/// examples/TextClassifier's WordNet reader and tokenizer on lines copied from Debian's wordnet-base data files
/// (1:3.0-37), with every expected field read off the line by hand (wndb(5WN)); no dataset needed.
/// </summary>
public sealed class WordNetReaderTests
{
    // data.noun, the first synset: offset 00001740, lexicographer file 03 (noun.Tops), one word, three pointers.
    private const string EntityLine =
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 ~ 00002137 n 0000 ~ 04424418 n 0000 | that which is perceived or known or inferred to have its own distinct existence (living or nonliving)  ";

    // data.verb, the second synset: file 29 (verb.body), five pointers, then one verb frame (01 + 02 00).
    private const string RespireLine =
        "00002325 29 v 01 respire 1 005 $ 00001740 v 0000 @ 02108395 v 0000 + 03110323 a 0101 + 00831191 n 0103 + 00830811 n 0101 01 + 02 00 | undergo the biomedical and metabolic processes of respiration by taking up oxygen and producing carbon monoxide  ";

    // data.adj: file 00 (adj.all), a gloss with four example sentences after the definition.
    private const string UnableLine =
        "00002098 00 a 01 unable 0 002 = 05200169 n 0000 ! 00001740 a 0101 | (usually followed by `to') not having the necessary means or skill or know-how; \"unable to get to town without a car\"; \"unable to obtain funds\"  ";

    // data.adv: file 02 (adv.all), three words (w_cnt is hexadecimal), no pointers, a definition with a semicolon of its own.
    private const string AnnoDominiLine =
        "00001837 02 r 03 AD 0 A.D. 0 anno_Domini 0 000 | in the Christian era; used before dates after the supposed year Christ was born; \"in AD 200\"  ";

    [Fact]
    public void HandCheckedLinesParseToTheirFields()
    {
        WordNetSynset entity = WordNetGlosses.ParseLine(EntityLine);
        Assert.Equal(1740, entity.Offset);
        Assert.Equal(3, entity.LexFile);
        Assert.Equal("noun.Tops", WordNetGlosses.LexNames[entity.LexFile]);
        Assert.Equal('n', entity.SynsetType);
        Assert.Equal(["entity"], entity.Words);
        Assert.Equal("that which is perceived or known or inferred to have its own distinct existence (living or nonliving)", entity.Definition);

        WordNetSynset respire = WordNetGlosses.ParseLine(RespireLine);
        Assert.Equal(2325, respire.Offset);
        Assert.Equal("verb.body", WordNetGlosses.LexNames[respire.LexFile]);
        Assert.Equal('v', respire.SynsetType);
        Assert.Equal(["respire"], respire.Words);
        Assert.StartsWith("undergo the biomedical", respire.Definition);
        Assert.EndsWith("carbon monoxide", respire.Definition);

        WordNetSynset unable = WordNetGlosses.ParseLine(UnableLine);
        Assert.Equal(0, unable.LexFile);
        Assert.Equal("adj.all", WordNetGlosses.LexNames[unable.LexFile]);
        Assert.Equal("(usually followed by `to') not having the necessary means or skill or know-how", unable.Definition);
        Assert.EndsWith("\"unable to obtain funds\"", unable.Gloss);

        WordNetSynset ad = WordNetGlosses.ParseLine(AnnoDominiLine);
        Assert.Equal(1837, ad.Offset);
        Assert.Equal("adv.all", WordNetGlosses.LexNames[ad.LexFile]);
        Assert.Equal('r', ad.SynsetType);
        Assert.Equal(["AD", "A.D.", "anno_Domini"], ad.Words);
        Assert.Equal("in the Christian era; used before dates after the supposed year Christ was born", ad.Definition);
    }

    [Fact]
    public void MalformedLinesNameTheFieldAndTheLine()
    {
        // Two words announced, one given: the reader runs into the pointer count where the second word should be.
        var missing = Assert.Throws<InvalidDataException>(() => WordNetGlosses.ParseLine("00001837 02 r 02 AD 0 000 | in the Christian era", "data.adv:30"));
        Assert.Contains("data.adv:30", missing.Message);
        var badFile = Assert.Throws<InvalidDataException>(() => WordNetGlosses.ParseLine("00001837 45 r 01 AD 0 000 | x", "data.adv:31"));
        Assert.Contains("lex_filenum 45", badFile.Message);
        var badType = Assert.Throws<InvalidDataException>(() => WordNetGlosses.ParseLine("00001837 02 x 01 AD 0 000 | x"));
        Assert.Contains("ss_type 'x'", badType.Message);
        var noGloss = Assert.Throws<InvalidDataException>(() => WordNetGlosses.ParseLine("00001837 02 r 01 AD 0 000"));
        Assert.Contains("' | '", noGloss.Message);
    }

    [Fact]
    public void TokensAreLowerCaseRunsOfLettersAndDigitsAndTheVocabularyCountsThem()
    {
        Assert.Equal(["usually", "followed", "by", "to", "not", "having", "know", "how"], Vocabulary.Tokenize("(usually followed by `to') not having; know-how"));
        Assert.Equal(["ad", "200"], Vocabulary.Tokenize("\"AD 200\""));

        // "the" 3 times, "cat" 2, "a" and "sat" once each (ties in ordinal order); two words kept.
        var vocabulary = Vocabulary.Build(["the cat sat", "The cat", "a the"], maxWords: 2);
        Assert.Equal(["the", "cat"], vocabulary.Words);
        Assert.Equal(4, vocabulary.Size);
        Assert.Equal([2L, 3L, Vocabulary.Unknown], vocabulary.Encode("The CAT sat.", maxLength: 8));
        Assert.Equal([2L, 3L], vocabulary.Encode("the cat sat", maxLength: 2));
        Assert.Equal([(long)Vocabulary.Unknown], vocabulary.Encode("--", maxLength: 8));

        var split = new EncodedSplit([[2L, 3L, 1L], [3L]], [5, 7]);
        (long[] tokens, int[] lengths, int longest) = split.Batch([1, 0]);
        Assert.Equal(3, longest);
        Assert.Equal([1, 3], lengths);
        Assert.Equal([3L, 0L, 0L, 2L, 3L, 1L], tokens);
    }

    [Fact]
    public void AMissingCorpusNamesTheDebianPackage()
    {
        string missing = Path.Combine(Path.GetTempPath(), "quantgen-no-wordnet-" + Guid.NewGuid().ToString("N"));
        var error = Assert.Throws<FileNotFoundException>(() => WordNetGlosses.Load(missing));
        Assert.Contains("apt-get install wordnet-base", error.Message);
        Assert.Contains(Path.Combine(missing, "data.noun"), error.Message);
    }
}

/// <summary>
/// examples/TextClassifier on the real corpus (Debian's wordnet-base must be installed): the files hold the hand-checked
/// lines, and tiny LSTM and Transformer classifiers trained for a few steps on a slice keep their predictions in int8.
/// </summary>
[Collection(nameof(FashionMnistCollection))]
public sealed class TextClassifierTests(ITestOutputHelper output)
{
    [Fact]
    public void TheRealFilesHoldTheHandCheckedLinesAndSplitNineToOne()
    {
        WordNetGlosses glosses = WordNetGlosses.Load(keepEvery: 50);
        string directory = glosses.Directory;
        Assert.Contains(File.ReadLines(Path.Combine(directory, "data.verb")), line => line.StartsWith("00002325 29 v 01 respire 1 005 ", StringComparison.Ordinal));
        Assert.Contains(File.ReadLines(Path.Combine(directory, "data.adv")), line => line.StartsWith("00001837 02 r 03 AD 0 A.D. 0 anno_Domini 0 000 | ", StringComparison.Ordinal));

        // The first synset kept is data.noun's first, entity (the licence header is skipped).
        Assert.Equal(1740, glosses.Train[0].Offset);
        Assert.Equal(3, glosses.Train[0].LexFile);

        // 117 659 synsets in WordNet 3.0 (82 115 + 13 767 + 18 156 + 3 621, counted with grep); every 50th kept, then
        // every 10th of those held out.
        int kept = (117_659 + 49) / 50;
        Assert.Equal(kept, glosses.Train.Count + glosses.Test.Count);
        Assert.Equal(kept / 10, glosses.Test.Count);
        Assert.All(glosses.Train.Concat(glosses.Test), s => Assert.InRange(s.LexFile, 0, WordNetGlosses.ClassCount - 1));
    }

    [Theory]
    [InlineData(GlossModelKind.Lstm)]
    [InlineData(GlossModelKind.Transformer)]
    public void Int8PredictionsAgreeWithFloatOnASlice(GlossModelKind kind)
    {
        WordNetGlosses glosses = WordNetGlosses.Load(keepEvery: 20);
        var settings = new GlossTraining(VocabularyWords: 1500, MaxLength: 16, EmbeddingDim: 32, HiddenSize: 32, Heads: 2, FeedForward: 64, EncoderLayers: 1, Dropout: 0, BatchSize: 64, LearningRate: 0.01, MaxSteps: 60, Epochs: 1);
        var vocabulary = Vocabulary.Build(glosses.Train.Select(s => s.Definition), settings.VocabularyWords);
        EncodedSplit train = EncodedSplit.FromSynsets(glosses.Train, vocabulary, settings.MaxLength);
        EncodedSplit test = EncodedSplit.FromSynsets(glosses.Test, vocabulary, settings.MaxLength);

        // One libtorch thread while training: on a 2-core machine shared with other work, two intra-op threads wait for
        // each other at every op (restored afterwards; the collection runs alone).
        int threads = torch.get_num_threads();
        torch.set_num_threads(1);
        torch.manual_seed(1);
        Module<Tensor, Tensor> model = kind == GlossModelKind.Lstm
            ? new LstmClassifier(settings, vocabulary.Size, WordNetGlosses.ClassCount)
            : new TransformerClassifier(settings, vocabulary.Size, WordNetGlosses.ClassCount);
        using (model)
        {
            try
            {
                GlossModels.Train(model, kind, train, settings);
            }
            finally
            {
                torch.set_num_threads(threads);
            }

            IInt8Classifier int8 = kind == GlossModelKind.Lstm
                ? new Int8LstmClassifier((LstmClassifier)model)
                : new Int8TransformerClassifier((TransformerClassifier)model, settings);
            int[] floatPredictions = GlossModels.Predict(test, 32, (tokens, batch, length) => GlossModels.FloatLogits(model, tokens, batch, length));
            int[] int8Predictions = GlossModels.Predict(test, 32, (tokens, batch, length) => int8.Forward(tokens, batch, length));
            int[] singlePredictions = GlossModels.Predict(test, 1, (tokens, batch, length) => int8.Forward(tokens, batch, length));
            double floatAccuracy = Percent(floatPredictions, test.Labels);
            double agreement = Percent(int8Predictions, floatPredictions);
            double singleAgreement = Percent(singlePredictions, floatPredictions);
            output.WriteLine($"{kind}: fp32 {floatAccuracy:F1}% on {test.Count} held-out definitions; int8 agrees on {agreement:F1}% (batch 32), {singleAgreement:F1}% (batch 1); {GlossModels.FloatBytes(model)} vs {int8.Bytes} bytes");

            // Learned something: the most common label is 12% of the set.
            Assert.True(floatAccuracy > 20, $"{kind}: fp32 accuracy {floatAccuracy:F1}% after {settings.MaxSteps} steps");
            Assert.True(agreement >= 95, $"{kind}: int8 agrees with fp32 on {agreement:F1}% of {test.Count} (batch 32)");
            Assert.True(singleAgreement >= 95, $"{kind}: int8 agrees with fp32 on {singleAgreement:F1}% of {test.Count} (batch 1)");
            Assert.True(int8.Bytes * 3 < GlossModels.FloatBytes(model), $"{kind}: int8 {int8.Bytes} bytes vs fp32 {GlossModels.FloatBytes(model)}");

            // The converted model with 4-bit embedding rows: its saved file (what a user ships) is more than 4× smaller
            // than the float parameters, and its predictions stay close to the float model's.
            IInt8Classifier fourBit = kind == GlossModelKind.Lstm
                ? new ConvertedLstmClassifier((LstmClassifier)model, QuantBackend.X86, embeddingBits: 4)
                : new ConvertedTransformerClassifier((TransformerClassifier)model, QuantBackend.X86, embeddingBits: 4);
            double fourBitAgreement = Percent(GlossModels.Predict(test, 32, (tokens, batch, length) => fourBit.Forward(tokens, batch, length)), floatPredictions);
            output.WriteLine($"{kind}, 4-bit embedding: agrees on {fourBitAgreement:F1}%; .qgen file {fourBit.Bytes} bytes ({GlossModels.FloatBytes(model) / (double)fourBit.Bytes:F2}x smaller)");
            Assert.True(fourBitAgreement >= 90, $"{kind}: the 4-bit-embedding model agrees with fp32 on {fourBitAgreement:F1}% of {test.Count}");
            Assert.True(fourBit.Bytes * 4 < GlossModels.FloatBytes(model), $"{kind}: 4-bit-embedding .qgen file {fourBit.Bytes} bytes vs fp32 {GlossModels.FloatBytes(model)}");
        }
    }

    [Fact]
    public void TheInt8ClassifiersRefuseABatchOfTheWrongSizeOrAnAllPaddingText()
    {
        var settings = new GlossTraining(EmbeddingDim: 8, HiddenSize: 8, Heads: 2, FeedForward: 8, EncoderLayers: 1, MaxLength: 4);
        torch.manual_seed(2);
        using var lstm = new LstmClassifier(settings, 10, 3);
        using var transformer = new TransformerClassifier(settings, 10, 3);
        lstm.eval();
        transformer.eval();
        IInt8Classifier[] models = [new Int8LstmClassifier(lstm), new Int8TransformerClassifier(transformer, settings)];
        foreach (IInt8Classifier int8 in models)
        {
            Assert.Equal(6, int8.Forward(new long[] { 2, 0, 3, 4 }, 2, 2).Length);
            var size = Assert.Throws<ArgumentException>(() => int8.Forward(new long[] { 2, 3, 4 }, 2, 2));
            Assert.Contains("got 3 indices for batch 2 and length 2", size.Message);
            var padding = Assert.Throws<ArgumentException>(() => int8.Forward(new long[] { 2, 3, 0, 0 }, 2, 2));
            Assert.Contains("text 1 of the batch starts with padding", padding.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => int8.Forward(new long[] { 2, 10 }, 1, 2));
        }

        // Longer than the position table.
        Assert.Contains("at most 4 tokens", Assert.Throws<ArgumentException>(() => models[1].Forward(new long[] { 2, 2, 2, 2, 2 }, 1, 5)).Message);
    }

    private static double Percent(int[] a, int[] b) => 100.0 * a.Zip(b).Count(p => p.First == p.Second) / a.Length;
}
