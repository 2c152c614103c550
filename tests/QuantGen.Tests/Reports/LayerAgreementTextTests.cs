using QuantGen.Reports;

namespace QuantGen.Tests.Reports;

/// <summary>The agreement table's percentages: never "100.00%" beside a mismatch.</summary>
public class LayerAgreementTextTests
{
    [Theory]
    [InlineData(100_000, 99_999, "99.99")]   // 99.999%: ordinary rounding would print 100.00 beside one mismatch
    [InlineData(100_000, 100_000, "100.00")]
    [InlineData(7, 2, "28.57")]             // 28.571...%
    [InlineData(100, 29, "29.00")]          // 0.29 * 10000 is 2899.99... in floating point: counted in integers
    [InlineData(3, 0, "0.00")]
    [InlineData(0, 0, "100.00")]            // no elements: nothing disagrees
    public void ExactPercentIsRoundedDown(int elements, int exact, string expected)
    {
        var row = new LayerAgreementRow("conv1", elements, exact, OffByOne: elements - exact, MaxSteps: elements == exact ? 0 : 1);

        Assert.Equal(expected, row.ExactPercent);
    }
}
