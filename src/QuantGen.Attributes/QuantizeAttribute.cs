using System;

namespace QuantGen
{
    /// <summary>
    /// Marks a <c>partial</c> TorchSharp <c>Module&lt;Tensor, Tensor&gt;</c> for int8 quantization. The
    /// QuantGen source generator reads the class's member modules and its <c>forward</c> at compile time
    /// and adds <c>Prepare()</c>, the nested <c>Observed</c> (calibration) and <c>Quantized</c> (int8)
    /// forms to it.
    /// </summary>
    /// <remarks>
    /// The class and every class it is nested in must be <c>partial</c>. Members may be typed as the concrete
    /// module (<c>Conv2d</c>) or as <c>Module&lt;Tensor, Tensor&gt;</c>; what the generator cannot follow is
    /// reported as a QGxxxx diagnostic at the line. Ops without an int8 kernel run in float between a
    /// dequantize and a quantize. The model must be in eval mode (<c>model.eval()</c>) when
    /// <c>Prepare()</c> is called, as PyTorch's post-training quantization requires.
    /// </remarks>
    /// <example>
    /// <code>
    /// [Quantize]                                   // x86 preset: PyTorch's get_default_qconfig("x86")
    /// public partial class Net : Module&lt;Tensor, Tensor&gt;
    /// {
    ///     private readonly Conv2d conv = Conv2d(3, 8, 3);
    ///     private readonly ReLU relu = ReLU();
    ///     public Net() : base(nameof(Net)) =&gt; RegisterComponents();
    ///     public override Tensor forward(Tensor x) =&gt; relu.forward(conv.forward(x));
    /// }
    ///
    /// var model = new Net(); model.eval();
    /// Net.Observed observed = model.Prepare();
    /// using (torch.no_grad()) foreach (Tensor batch in calibration) observed.forward(batch);
    /// Net.Quantized int8 = observed.Convert();
    /// </code>
    /// </example>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class QuantizeAttribute : Attribute
    {
        /// <summary>Quantize with the default backend, <see cref="QuantBackend.X86"/>.</summary>
        public QuantizeAttribute()
        {
        }

        /// <summary>Quantize with the given backend preset.</summary>
        /// <param name="backend">Whose integer arithmetic and default qconfig: <see cref="QuantBackend.X86"/> or <see cref="QuantBackend.Qnnpack"/>.</param>
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
