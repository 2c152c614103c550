using System.Linq;
using QuantGen.Modules;
using QuantGen.Tests.Binding;
using TorchSharp;
using static TorchSharp.torch;

namespace QuantGen.Tests.Tensors;

/// <summary>
/// TensorInterop copies a tensor's storage as one block: views that start inside their storage, transposed and
/// sliced tensors and bool masks must come out in logical row-major order (checked element by element through
/// TorchSharp's accessor, the slow independent path).
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class TensorInteropTests
{
    [Fact]
    public void Views_with_an_offset_transposes_and_slices_copy_in_logical_order()
    {
        using Tensor all = torch.arange(0, 60, dtype: ScalarType.Float32).reshape(3, 4, 5);
        Tensor[] views =
        [
            all,
            all[1],                                            // contiguous, starts 20 values into the storage
            all[TensorIndex.Slice(1, 3)],                       // contiguous, offset 20
            all.transpose(0, 2),                                // not contiguous
            all[TensorIndex.Colon, TensorIndex.Slice(1, 4), TensorIndex.Slice(null, null, 2)],
            torch.empty(0, 3),
        ];
        foreach (Tensor view in views)
        {
            float[] expected = view.numel() == 0 ? [] : view.contiguous().data<float>().ToArray();
            Assert.Equal(expected, TensorInterop.ToArray(view, out int[] shape));
            Assert.Equal(view.shape.Select(d => (int)d), shape);
        }
    }

    [Fact]
    public void A_bool_mask_copies_as_its_values()
    {
        using Tensor mask = torch.tensor(new[] { true, false, false, true, true, false }, new long[] { 2, 3 });
        Assert.Equal(new[] { true, true, false, true, false, false }, TensorInterop.ToBoolArray(mask.t()));
        Assert.Equal(new[] { false, true, false, false }, TensorInterop.ToBoolArray(mask[TensorIndex.Colon, TensorIndex.Slice(1, 3)].t().contiguous().flatten()[TensorIndex.Slice(0, 4)]));
    }
}
