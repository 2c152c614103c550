// A CenterNet-style deconv head (seed 002) quantized in graph mode with the seed's qconfig: symmetric qint8
// activations, per-channel weights, and ConvTranspose2d per-channel on axis 1 — which PyTorch refused.
// Run: dotnet run --project examples/CenterNetHead [-- --size 128 --batches 4 --seed 0]
using System;
using System.Globalization;
using System.Linq;
using CenterNetHeadExample;
using QuantGen;
using QuantGen.Reports;
using TorchSharp;
using static TorchSharp.torch;

int size = Option("--size", 128), batches = Option("--batches", 4), seed = Option("--seed", 0);
torch.manual_seed(seed);
using var model = new CenterNetHead();
model.eval();

QConfigMapping mapping = CenterNetHead.DefaultQConfigMapping();
Console.WriteLine("QConfig mapping declared on the class ([QConfig] attributes):");
Console.WriteLine(mapping);
Console.WriteLine();

using CenterNetHead.Observed observed = model.Prepare(mapping);
QuantGen.Reports.ConsoleProgress.Calibrate(
    "Calibrating",
    progress => observed.Calibrate(Enumerable.Range(0, batches).Select(_ => torch.randn(1, 3, size, size)), progress));

CenterNetHead.Quantized int8 = observed.Convert();
using CenterNetHead.Reference reference = observed.ConvertReference();
Console.WriteLine(int8);
Console.WriteLine();

using Tensor image = torch.randn(1, 3, size, size);
QTensor input = int8.input.Forward(image.data<float>().ToArray(), [1, 3, size, size]);
LayerAgreement agreement = LayerAgreement.Measure(
    tap => int8.forward(input, tap),
    tap => reference.forward(image, tap).Dispose());
Console.WriteLine("Every int8 op against its QDQ reference op, given the same input:");
Console.WriteLine(agreement);

using Tensor floatOut = model.forward(image);
using Tensor int8Out = int8.forward(image);
float cosine = torch.nn.functional.cosine_similarity(floatOut.flatten(), int8Out.flatten(), dim: 0).item<float>();
Console.WriteLine($"Whole model, float vs int8 output: cosine similarity {cosine:F4} over {floatOut.numel()} values.");

int Option(string name, int fallback)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}
