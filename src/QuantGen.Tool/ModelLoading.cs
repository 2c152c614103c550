using System;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.Loader;
using QuantGen.Serialization;

namespace QuantGen.Tool;

/// <summary>
/// Loads a <c>.qgen</c> file as a runnable int8 model. A model bound at <c>Prepare()</c> carries its graph in the file and
/// loads from the file alone. A model of the generated form has its graph compiled into its class: it loads through that
/// class's <c>Quantized.Load</c>, found in the compiled assembly given with <c>--assembly</c>.
/// </summary>
internal static class ModelLoading
{
    /// <summary>The option's name, for messages.</summary>
    public const string AssemblyOption = "--assembly";

    public static IQuantizedModel Load(string path, string? assemblyPath)
    {
        QGenFileInfo info = QGenFile.ReadInfo(path);
        if (QGenFile.CarriesGraph(info))
        {
            return QGenFile.LoadBoundModel(path);
        }

        if (assemblyPath is null)
        {
            throw new ToolInputException(
                $"{path}: model {info.Model} was saved from its generated form: which layer reads which value is compiled into the class {info.Model}, " +
                $"not stored in the file. Give {AssemblyOption} with the compiled assembly that defines {info.Model} (e.g. bin/Debug/net10.0/MyApp.dll), " +
                $"or load it in code with {info.Model}.Quantized.Load(path). `quantgen inspect` reads the file without it.");
        }

        return LoadWithClass(path, info, assemblyPath);
    }

    private static IQuantizedModel LoadWithClass(string path, QGenFileInfo info, string assemblyPath)
    {
        string full = Path.GetFullPath(assemblyPath);
        if (!File.Exists(full))
        {
            throw new ToolInputException($"{AssemblyOption} {assemblyPath}: no such file; give the compiled assembly (.dll) of the project that defines {info.Model}.");
        }

        // The assembly's own folder resolves its dependencies; QuantGen's assemblies are the tool's own (already loaded).
        string folder = Path.GetDirectoryName(full)!;
        AssemblyLoadContext.Default.Resolving += (context, name) =>
        {
            string candidate = Path.Combine(folder, name.Name + ".dll");
            return File.Exists(candidate) ? context.LoadFromAssemblyPath(candidate) : null;
        };
        Assembly assembly;
        try
        {
            assembly = AssemblyLoadContext.Default.LoadFromAssemblyPath(full);
        }
        catch (BadImageFormatException e)
        {
            throw new ToolInputException($"{AssemblyOption} {assemblyPath}: not a .NET assembly ({e.Message}).");
        }

        Type[] types;
        try
        {
            types = assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException e)
        {
            types = e.Types.Where(t => t is not null).ToArray()!;
        }

        // The class is the one named like the file's model whose generated Quantized has the file's graph hash.
        Type[] candidates = types.Where(t => t.Name == info.Model && t.GetNestedType("Quantized") is not null).ToArray();
        foreach (Type model in candidates)
        {
            Type quantized = model.GetNestedType("Quantized")!;
            if (quantized.GetField("GraphHash", BindingFlags.Public | BindingFlags.Static)?.GetValue(null) as string != info.GraphHash)
            {
                continue;
            }

            MethodInfo load = quantized.GetMethod("Load", BindingFlags.Public | BindingFlags.Static, [typeof(string)])
                ?? throw new ToolInputException($"{full}: {model.FullName}.Quantized has no Load(string).");
            try
            {
                return (IQuantizedModel)load.Invoke(null, [path])!;
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
                throw;
            }
        }

        string found = candidates.Length == 0
            ? $"it defines no [Quantize] class named {info.Model}"
            : $"its {string.Join(", ", candidates.Select(c => c.FullName))} has graph {string.Join(", ", candidates.Select(c => c.GetNestedType("Quantized")!.GetField("GraphHash")?.GetValue(null)))}, the file {info.GraphHash} (the model's code changed since the file was saved)";
        throw new ToolInputException($"{path}: cannot load model {info.Model} (graph {info.GraphHash}) with {assemblyPath}: {found}.");
    }
}
