using System;

namespace QuantGen
{
    /// <summary>
    /// Fuses member modules that follow each other in <c>forward</c> into one quantized op, like
    /// PyTorch's eager-mode <c>fuse_modules(model, [["conv1", "bn1", "relu1"]])</c>. Supported
    /// sequences: conv+relu, conv+bn, conv+bn+relu (the BatchNorm is folded into the conv weights)
    /// and linear+relu. Repeat the attribute for each group.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
    public sealed class FuseAttribute : Attribute
    {
        /// <summary>Names of the member modules to fuse, in the order <c>forward</c> calls them.</summary>
        public FuseAttribute(params string[] members)
        {
            Members = members;
        }

        /// <summary>Names of the member modules to fuse, in forward order.</summary>
        public string[] Members { get; }
    }
}
