using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.Editing;

namespace QuantGen.CodeFixes;

/// <summary>
/// What QuantGen's code fixes share: a fix is worked out per diagnostic as a <see cref="FixPlan"/> (or none, when
/// the diagnostic's properties say no edit would remove it), registered as one code action, and fixed in bulk by
/// a Fix All that gathers every plan with the same equivalence key and applies each edit once. Edits go through a
/// <see cref="SolutionEditor"/> because the member a fix changes may be declared in another file of a partial class.
/// </summary>
public abstract class QuantGenCodeFixProvider : CodeFixProvider
{
    /// <summary>The fix for <paramref name="diagnostic"/> in <paramref name="document"/>, or null when none applies.</summary>
    internal abstract Task<FixPlan?> PlanAsync(Document document, Diagnostic diagnostic, CancellationToken cancellationToken);

    /// <summary>The title of a Fix All of the fixes with <paramref name="equivalenceKey"/>.</summary>
    internal abstract string FixAllTitle(string equivalenceKey);

    /// <inheritdoc/>
    public sealed override FixAllProvider GetFixAllProvider() => new FixAll(this);

    /// <inheritdoc/>
    public sealed override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        foreach (Diagnostic diagnostic in context.Diagnostics)
        {
            FixPlan? plan = await PlanAsync(context.Document, diagnostic, context.CancellationToken).ConfigureAwait(false);
            if (plan is null)
            {
                continue;
            }

            Solution solution = context.Document.Project.Solution;
            context.RegisterCodeFix(
                CodeAction.Create(plan.Title, cancellationToken => ApplyAsync(solution, plan.Edits, cancellationToken), plan.EquivalenceKey),
                diagnostic);
        }
    }

    /// <summary>Applies <paramref name="edits"/> to <paramref name="solution"/>, each distinct edit once.</summary>
    internal static async Task<Solution> ApplyAsync(Solution solution, IEnumerable<FixEdit> edits, CancellationToken cancellationToken)
    {
        var editor = new SolutionEditor(solution);
        var applied = new HashSet<(DocumentId, Microsoft.CodeAnalysis.Text.TextSpan, string)>();
        foreach (FixEdit edit in edits)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (applied.Add(edit.Identity))
            {
                DocumentEditor documentEditor = await editor.GetDocumentEditorAsync(edit.Document.Id, cancellationToken).ConfigureAwait(false);
                SyntaxNode? node = documentEditor.OriginalRoot
                    .FindNode(edit.Node.Span, getInnermostNodeForTie: true)
                    .AncestorsAndSelf()
                    .FirstOrDefault(n => n.Span == edit.Node.Span && n.RawKind == edit.Node.RawKind);
                if (node is not null)
                {
                    edit.Apply(documentEditor, node);
                }
            }
        }

        return editor.GetChangedSolution();
    }

    /// <summary>Fix All in a document, project or solution: the plans of every diagnostic in scope that share the key.</summary>
    private sealed class FixAll : FixAllProvider
    {
        private readonly QuantGenCodeFixProvider _provider;

        public FixAll(QuantGenCodeFixProvider provider) => _provider = provider;

        public override IEnumerable<FixAllScope> GetSupportedFixAllScopes() =>
            new[] { FixAllScope.Document, FixAllScope.Project, FixAllScope.Solution };

        public override async Task<CodeAction?> GetFixAsync(FixAllContext fixAllContext)
        {
            string? key = fixAllContext.CodeActionEquivalenceKey;
            if (key is null)
            {
                return null;
            }

            IEnumerable<Document> documents = fixAllContext.Scope switch
            {
                FixAllScope.Project => fixAllContext.Project.Documents,
                FixAllScope.Solution => fixAllContext.Solution.Projects.SelectMany(p => p.Documents),
                _ => fixAllContext.Document is { } document ? new[] { document } : Enumerable.Empty<Document>(),
            };

            var edits = new List<FixEdit>();
            foreach (Document document in documents)
            {
                ImmutableArray<Diagnostic> diagnostics = await fixAllContext.GetDocumentDiagnosticsAsync(document).ConfigureAwait(false);
                foreach (Diagnostic diagnostic in diagnostics)
                {
                    FixPlan? plan = await _provider.PlanAsync(document, diagnostic, fixAllContext.CancellationToken).ConfigureAwait(false);
                    if (plan is not null && plan.EquivalenceKey == key)
                    {
                        edits.AddRange(plan.Edits);
                    }
                }
            }

            if (edits.Count == 0)
            {
                return null;
            }

            Solution solution = fixAllContext.Solution;
            return CodeAction.Create(_provider.FixAllTitle(key), cancellationToken => ApplyAsync(solution, edits, cancellationToken), key);
        }
    }
}
