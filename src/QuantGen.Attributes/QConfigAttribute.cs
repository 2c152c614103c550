using System;
using QuantGen.Observers;

namespace QuantGen
{
    /// <summary>
    /// Declares a qconfig on the class, PyTorch's <c>QConfigMapping</c> written as attributes, with its
    /// priorities: a member path beats a module type, which beats the global one. Every property left
    /// unset keeps the value of the class's backend preset (<c>[Quantize(Backend = ...)]</c>); a
    /// <c>QConfigMapping</c> passed to <c>Prepare</c> overrides these.
    /// </summary>
    /// <example>
    /// <code>
    /// [QConfig(ActivationDType = QuantDType.QInt8, ActivationScheme = QScheme.PerTensorSymmetric)]   // global
    /// [QConfig(typeof(ConvTranspose2d), WeightScheme = QScheme.PerChannelSymmetric, WeightAxis = 1)]  // module type
    /// [QConfig("head.hm", WeightObserver = ObserverKind.MinMax, WeightScheme = QScheme.PerTensorSymmetric)] // member path
    /// </code>
    /// </example>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
    public sealed class QConfigAttribute : Attribute
    {
        /// <summary>The global qconfig.</summary>
        public QConfigAttribute()
        {
        }

        /// <summary>The qconfig of every member module of this type (e.g. <c>typeof(ConvTranspose2d)</c>).</summary>
        /// <param name="moduleType">A TorchSharp module type; matched by its simple name.</param>
        public QConfigAttribute(Type moduleType)
        {
            ModuleType = moduleType;
        }

        /// <summary>The qconfig of one member, by its path ("conv1", "layer1.0.conv2").</summary>
        /// <param name="memberPath">The member's name, or a dotted path into sub-modules and Sequentials; it also covers the members below it.</param>
        public QConfigAttribute(string memberPath)
        {
            MemberPath = memberPath;
        }

        /// <summary>The module type this qconfig is for, or null.</summary>
        public Type? ModuleType { get; }

        /// <summary>The member path this qconfig is for, or null.</summary>
        public string? MemberPath { get; }

        /// <summary>Activation observer algorithm.</summary>
        public ObserverKind ActivationObserver { get; set; }

        /// <summary>Activation dtype (quint8 or qint8).</summary>
        public QuantDType ActivationDType { get; set; }

        /// <summary>Activation scheme (per-tensor affine or symmetric).</summary>
        public QScheme ActivationScheme { get; set; }

        /// <summary>Halve the activation range (7-bit activations), as the x86/fbgemm preset does.</summary>
        public bool ActivationReduceRange { get; set; }

        /// <summary>
        /// The percentile a <see cref="ObserverKind.Percentile"/> activation observer clips at, in (0, 100]
        /// (<c>ObserverSpec.ClipPercentile</c>; 99.99 when not set).
        /// </summary>
        public double ActivationPercentile { get; set; }

        /// <summary>Weight observer algorithm.</summary>
        public ObserverKind WeightObserver { get; set; }

        /// <summary>Weight dtype (qint8).</summary>
        public QuantDType WeightDType { get; set; }

        /// <summary>Weight scheme (per-channel or per-tensor, symmetric or affine).</summary>
        public QScheme WeightScheme { get; set; }

        /// <summary>Channel axis of per-channel weights: 0 for Conv2d/Linear, 1 for ConvTranspose2d's output channels.</summary>
        public int WeightAxis { get; set; }
    }
}
