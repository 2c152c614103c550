using System;

namespace QuantGen
{
    /// <summary>
    /// Marks a <c>partial</c> TorchSharp <c>Module&lt;Tensor, Tensor&gt;</c> for int8 quantization. The
    /// QuantGen source generator reads the class's member modules and its <c>forward</c> at compile time
    /// and adds <c>Prepare()</c>, the nested <c>Observed</c> (calibration) and <c>Quantized</c> (int8)
    /// forms to it.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class QuantizeAttribute : Attribute
    {
        /// <summary>Quantize with the default backend, <see cref="QuantBackend.X86"/>.</summary>
        public QuantizeAttribute()
        {
        }

        /// <summary>Quantize with the given backend preset.</summary>
        public QuantizeAttribute(QuantBackend backend)
        {
            Backend = backend;
        }

        /// <summary>The backend whose arithmetic and default qconfig the model uses.</summary>
        public QuantBackend Backend { get; set; } = QuantBackend.X86;

        /// <summary>
        /// Fuse the standard patterns automatically (conv-bn-relu, conv-bn, conv-relu, linear-relu, linear-bn,
        /// convtranspose-bn, bn-relu, add-relu), as PyTorch's FX mode does. On by default; explicit
        /// <see cref="FuseAttribute"/> groups are honoured either way.
        /// </summary>
        public bool AutoFuse { get; set; } = true;
    }
}
