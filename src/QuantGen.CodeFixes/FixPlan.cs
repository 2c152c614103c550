using System;
using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Editing;
using Microsoft.CodeAnalysis.Text;

namespace QuantGen.CodeFixes;

/// <summary>
/// One edit of a fix: the node it changes (in the document that holds it), a key naming what it does to that
/// node, and the change itself. Fixing several diagnostics at once applies each (node, key) once, so two
/// diagnostics that ask for the same edit (two errors inside one Sequential, a class and its container not
/// partial) do not add <c>[NoQuantize]</c> or <c>partial</c> twice. The change is given the node as found again in
/// the editor's tree, which need not be the tree object the fix was planned on.
/// </summary>
internal sealed class FixEdit
{
    public FixEdit(Document document, SyntaxNode node, string key, Action<SyntaxEditor, SyntaxNode> apply)
    {
        Document = document;
        Node = node;
        Key = key;
        Apply = apply;
    }

    public Document Document { get; }

    public SyntaxNode Node { get; }

    public string Key { get; }

    public Action<SyntaxEditor, SyntaxNode> Apply { get; }

    /// <summary>What makes two edits the same edit.</summary>
    public (DocumentId, TextSpan, string) Identity => (Document.Id, Node.FullSpan, Key);
}

/// <summary>The fix for one diagnostic: its title, the key that groups like fixes for Fix All, and its edits.</summary>
internal sealed class FixPlan
{
    public FixPlan(string title, string equivalenceKey, ImmutableArray<FixEdit> edits)
    {
        Title = title;
        EquivalenceKey = equivalenceKey;
        Edits = edits;
    }

    public string Title { get; }

    public string EquivalenceKey { get; }

    public ImmutableArray<FixEdit> Edits { get; }
}
