namespace QuantGen.Tests;

public class SmokeTests
{
    [Fact]
    public void QuantRangeHalvesWithReduceRange() =>
        Assert.Equal((0, 127), QParamsMath.QuantRange(QuantDType.QUInt8, reduceRange: true));
}
