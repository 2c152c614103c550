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
