using System;

namespace QuantGen
{
    /// <summary>
    /// Keeps a member module (or a whole sub-module) in float: the quantized forms dequantize before it
    /// and quantize again after it (PyTorch's <c>qconfig = None</c> for that module).
    /// </summary>
    /// <remarks>
    /// The same as <c>QConfigMapping.SetModuleName("member", null)</c> passed to <c>Prepare</c>, written on the
    /// member. <c>observed.Summary()</c> lists what runs in float and why.
    /// </remarks>
    /// <example>
    /// <code>
    /// [NoQuantize] private readonly Linear head = Linear(512, 10);   // the classifier stays float
    /// </code>
    /// </example>
    [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
    public sealed class NoQuantizeAttribute : Attribute
    {
    }
}
