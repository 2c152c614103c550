using System;

namespace QuantGen
{
    /// <summary>
    /// Keeps a member module (or a whole sub-module) in float: the quantized forms dequantize before it
    /// and quantize again after it (PyTorch's <c>qconfig = None</c> for that module).
    /// </summary>
    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
    public sealed class NoQuantizeAttribute : Attribute
    {
    }
}
