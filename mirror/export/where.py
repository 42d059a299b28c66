"""Validation of the `--where` option: one SQL boolean expression over the export's columns.

The text is parsed with sqlglot (DuckDB dialect) and accepted only when every node is a column of
the export, a literal, an operator or a whitelisted function. Subqueries, table functions
(read_csv, read_parquet...), file or network access, DDL/DML, parameters, several statements and
comments are refused with a one-line `MirrorError`. The SQL actually run is regenerated from the
checked syntax tree, never the user's text.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from mirror.core.errors import BadInput, MirrorError

# Operators, literals and structure.
_ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    exp.And,
    exp.Or,
    exp.Not,
    exp.Paren,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.Neg,
    exp.DPipe,
    exp.Case,
    exp.If,
    exp.Cast,
    exp.TryCast,
    exp.DataType,
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Interval,
)

# Functions: sqlglot's typed function nodes allowed, and DuckDB names allowed when sqlglot
# does not know them (exp.Anonymous).
_ALLOWED_FUNCTIONS: tuple[type[exp.Expression], ...] = (
    exp.Lower,
    exp.Upper,
    exp.Length,
    exp.Substring,
    exp.Trim,
    exp.Coalesce,
    exp.Abs,
    exp.Round,
    exp.Year,
    exp.Month,
    exp.Day,
    exp.StartsWith,
    exp.Contains,
    exp.RegexpLike,
    exp.CurrentDate,
    exp.TimestampTrunc,
    exp.DateTrunc,
    exp.Concat,
    exp.Nullif,
    exp.Least,
    exp.Greatest,
    exp.Left,
    exp.Right,
    exp.StrPosition,
)
ALLOWED_ANONYMOUS = frozenset(
    {
        "strip_accents",
        "ends_with",
        "suffix",
        "prefix",
        "lpad",
        "rpad",
        "replace",
        "ifnull",
        "isodow",
        "dayofweek",
        "quarter",
        "date_part",
        "date_diff",
        "datediff",
        "nfc_normalize",
        "ltrim",
        "rtrim",
        "lcase",
        "ucase",
    }
)

ALLOWED_FUNCTION_NAMES = sorted(
    {c.sql_names()[0].lower() for c in _ALLOWED_FUNCTIONS if c.sql_names()} | ALLOWED_ANONYMOUS
)


def _refuse(detail: str) -> MirrorError:
    return BadInput(f"--where refused: {detail}")


def _describe(node: exp.Expression) -> str:
    if isinstance(node, (exp.Select, exp.Subquery, exp.Exists, exp.Union)):
        return "subqueries are not allowed"
    if isinstance(node, exp.Placeholder):
        return "parameters (?, $1) are not allowed"
    if isinstance(node, exp.Func):
        name = node.name if isinstance(node, exp.Anonymous) else (node.sql_names() or [node.key])[0]
        return f"function {name.lower()}() is not allowed (allowed: {', '.join(ALLOWED_FUNCTION_NAMES)})"
    if isinstance(node, exp.Star):
        return "* is not allowed"
    return f"{node.key} expressions are not allowed (only columns, literals, operators and whitelisted functions)"


def validate_where(text: str, columns: list[str] | set[str]) -> tuple[str, set[str]]:
    """Checks `text` and returns (DuckDB SQL regenerated from the checked tree, canonical columns used).

    `columns` are the names the expression may reference (matched case-insensitively, as DuckDB does).
    """
    if not text or not text.strip():
        raise _refuse("empty expression")
    try:
        tokens = sqlglot.tokenize(text, read="duckdb")
    except (TokenError, ParseError) as exc:
        raise _refuse(f"cannot read it ({str(exc).splitlines()[0]})") from None
    for tok in tokens:
        if tok.comments:
            raise _refuse("comments are not allowed")
        if tok.token_type == sqlglot.TokenType.SEMICOLON:
            raise _refuse("only one expression is allowed (no ';')")
    if "--" in text or "/*" in text:
        # A comment marker the tokenizer did not report (e.g. at the very end): refuse anyway,
        # unless it sits inside a string literal.
        string_texts = [t.text for t in tokens if t.token_type == sqlglot.TokenType.STRING]
        stripped = text
        for s in string_texts:
            stripped = stripped.replace(s, "")
        if "--" in stripped or "/*" in stripped:
            raise _refuse("comments are not allowed")
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except (ParseError, TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise _refuse(f"not a valid SQL expression ({first})") from None
    if tree is None:
        raise _refuse("empty expression")

    by_lower = {c.lower(): c for c in columns}
    used: set[str] = set()
    for node in tree.walk():
        if isinstance(node, exp.Column):
            if node.table or node.args.get("db") or node.args.get("catalog"):
                raise _refuse(f"qualified name {node.sql()} is not allowed; use the bare column name")
            if isinstance(node.this, exp.Star):
                raise _refuse("* is not allowed")
            canonical = by_lower.get(node.name.lower())
            if canonical is None:
                raise _refuse(f"unknown column {node.name!r} (see `mirror export --list-columns`)")
            node.set("this", exp.to_identifier(canonical, quoted=True))
            used.add(canonical)
            continue
        if isinstance(node, exp.Var):
            # Units such as 'month' in date_trunc / interval: only as an argument of an allowed node.
            if isinstance(node.parent, (exp.Interval, exp.TimestampTrunc, exp.DateTrunc, exp.Anonymous)):
                continue
            raise _refuse(f"unexpected word {node.name!r}")
        if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest")):
            raise _refuse("subqueries are not allowed")
        if isinstance(node, exp.Anonymous):
            if node.name.lower() not in ALLOWED_ANONYMOUS:
                raise _refuse(_describe(node))
            continue
        if isinstance(node, _ALLOWED_FUNCTIONS) or isinstance(node, _ALLOWED_NODES):
            continue
        raise _refuse(_describe(node))
    if isinstance(tree, (exp.Column, exp.Literal)) and not isinstance(tree, exp.Boolean):
        # A bare column is fine only if boolean; DuckDB will tell. A bare literal is pointless but harmless.
        pass
    return tree.sql(dialect="duckdb", comments=False), used
