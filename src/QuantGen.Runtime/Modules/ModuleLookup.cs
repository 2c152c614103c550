using System;
using System.Collections.Generic;
using TorchSharp;

namespace QuantGen.Modules;

/// <summary>
/// Finds a module by its PyTorch-style path ("layer1.0.conv1") in a TorchSharp module tree: how generated
/// code reaches members of Sequential containers and [Quantize] sub-modules, whose fields are private.
/// </summary>
public static class ModuleLookup
{
    /// <summary>All modules of <paramref name="model"/> by path (from <c>named_modules()</c>).</summary>
    public static IReadOnlyDictionary<string, torch.nn.Module> Index(torch.nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var index = new Dictionary<string, torch.nn.Module>(StringComparer.Ordinal);
        foreach ((string name, torch.nn.Module module) in model.named_modules())
        {
            index[name] = module;
        }

        return index;
    }

    /// <summary>
    /// Throws unless <paramref name="model"/> and every module in it are in eval mode, as PyTorch's post-training
    /// quantization requires (its <c>fuse_modules</c> refuses with "Fusion only for eval!"): BatchNorm is folded
    /// with its running statistics, which training would go on changing, and observers must see the forward that
    /// inference runs (Dropout off). Every generated <c>Prepare()</c> calls it first.
    /// </summary>
    /// <param name="model">The user's model.</param>
    /// <param name="modelName">Its class name, for the message.</param>
    /// <exception cref="InvalidOperationException">The model, or a module in it, is in training mode; the message names it and says to call <c>model.eval()</c>.</exception>
    public static void RequireEval(torch.nn.Module model, string modelName)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.training)
        {
            throw new InvalidOperationException(
                $"{modelName}.Prepare(): the model is in training mode. Call model.eval() before Prepare(): post-training " +
                "quantization folds BatchNorm with its running statistics and calibrates on the forward inference runs, " +
                "as PyTorch does (its fuse_modules refuses a training model: \"Fusion only for eval!\").");
        }

        foreach ((string path, torch.nn.Module module) in model.named_modules())
        {
            if (path.Length > 0 && module.training)
            {
                throw new InvalidOperationException(
                    $"{modelName}.Prepare(): the model is in eval mode but its module '{path}' ({module.GetType().Name}) is in " +
                    "training mode. Call model.eval() before Prepare() (it sets every module to eval mode) and do not call " +
                    "train() on a part of the model afterwards.");
            }
        }
    }

    /// <summary>The module at <paramref name="path"/>, of type <typeparamref name="T"/>; throws naming model and path when missing or of another type.</summary>
    public static T Get<T>(IReadOnlyDictionary<string, torch.nn.Module> index, string model, string path)
        where T : torch.nn.Module
    {
        ArgumentNullException.ThrowIfNull(index);
        if (!index.TryGetValue(path, out torch.nn.Module? module))
        {
            throw new InvalidOperationException($"{model}.{path}: no such module is registered. Did the constructor of the class that declares it call RegisterComponents()?");
        }

        return module as T ?? throw new InvalidOperationException($"{model}.{path}: expected a {typeof(T).Name}, found a {module.GetType().Name}.");
    }

    /// <summary>The module at <paramref name="path"/>, or null when none is registered there (e.g. ResNet's <c>downsample</c> left null).</summary>
    public static torch.nn.Module? Find(IReadOnlyDictionary<string, torch.nn.Module> index, string path)
    {
        ArgumentNullException.ThrowIfNull(index);
        return index.TryGetValue(path, out torch.nn.Module? module) ? module : null;
    }
}
