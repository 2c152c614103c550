using System.Collections.Generic;

namespace QuantGen.Serialization;

/// <summary>A model file read without its model class (<see cref="QGenFile.ReadContents"/>): its header and every layer, decoded.</summary>
/// <param name="Info">The header and the layer records' framing.</param>
/// <param name="Layers">
/// One decoded layer per record, in file order: the int8 layer classes of <c>QuantGen.Modules</c> (weights, qparams and
/// options), and for a model bound at <c>Prepare()</c> its graph record first (<see cref="Binding.BoundTopology"/>).
/// </param>
public sealed record QGenFileContents(QGenFileInfo Info, IReadOnlyList<IQuantizedLayer> Layers);
