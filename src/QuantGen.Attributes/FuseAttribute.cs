using System;

namespace QuantGen
{
    /// <summary>
    /// Fuses member modules that follow each other in <c>forward</c> into one quantized op, like
    /// PyTorch's eager-mode <c>fuse_modules(model, [["conv1", "bn1", "relu1"]])</c>. Supported
    /// sequences: conv+relu, conv+bn, conv+bn+relu (the BatchNorm is folded into the conv weights)
    /// and linear+relu. Repeat the attribute for each group.
    /// </summary>
    /// <remarks>
    /// With <c>[Quantize]</c>'s <c>AutoFuse</c> (on by default) these patterns are found without the attribute;
    /// <c>[Fuse]</c> says it explicitly, as eager-mode PyTorch code does. A name that is not a member, or members
    /// that do not follow each other in <c>forward</c>, is reported at compile time.
    /// </remarks>
    /// <example>
    /// <code>
    /// [Quantize]
    /// [Fuse(nameof(conv1), nameof(bn1), nameof(relu1))]
    /// [Fuse(nameof(fc), nameof(relu2))]
    /// public partial class Net : Module&lt;Tensor, Tensor&gt; { ... }
    /// </code>
    /// </example>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
    public sealed class FuseAttribute : Attribute
    {
        /// <summary>Names of the member modules to fuse, in the order <c>forward</c> calls them.</summary>
        /// <param name="members">Member names, best written with <c>nameof</c> so a rename keeps them right.</param>
        public FuseAttribute(params string[] members)
        {
            Members = members;
        }

        /// <summary>Names of the member modules to fuse, in forward order.</summary>
        public string[] Members { get; }
    }
}
