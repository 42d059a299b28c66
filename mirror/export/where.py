"""Validation of the `--where` option: one SQL boolean expression over the export's columns.

The function names are checked as the user wrote them (a word followed by "(" in the tokens) against
`ALLOWED_FUNCTION_NAMES`, and an error names that word: sqlglot reads several spellings into one node
(strftime is its TimeToStr, date_diff its DateDiff), whose own name the user never typed. The text is
then parsed with sqlglot (DuckDB dialect), and *compiled*: every node of the tree must be of a
known kind (a column of the export, a literal, an operator, a function of `ALLOWED_FUNCTION_NAMES`, a
cast to a type of `ALLOWED_TYPES`), and the SQL run is written by this module from fixed strings:
column names come from the export's column list, function and type names from the allow-lists below,
and literals become bound parameters. Nothing of the user's text is echoed into the SQL, so a name or
a string the parser misreads (e.g. a quoted type name spanning injected text) can only be refused.
Subqueries, table functions, parameters, several statements, comments, unknown arguments of a known
node, and texts over `MAX_CHARS` characters, `MAX_NODES` nodes or `MAX_DEPTH` levels are refused
with a one-line `BadInput`.
"""

from __future__ import annotations

import re
from decimal import Decimal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from mirror.core.errors import BadInput

MAX_CHARS = 4000
MAX_NODES = 500
MAX_DEPTH = 32

# Cast targets: sqlglot's type -> the DuckDB name written into the SQL.
_T = exp.DataType.Type
ALLOWED_TYPES: dict[exp.DataType.Type, str] = {
    _T.VARCHAR: "VARCHAR",
    _T.TEXT: "VARCHAR",
    _T.INT: "INTEGER",
    _T.BIGINT: "BIGINT",
    _T.SMALLINT: "SMALLINT",
    _T.DOUBLE: "DOUBLE",
    _T.FLOAT: "FLOAT",
    _T.DATE: "DATE",
    _T.TIMESTAMP: "TIMESTAMP",
    _T.TIMESTAMPNTZ: "TIMESTAMP",
    _T.BOOLEAN: "BOOLEAN",
    _T.DECIMAL: "DECIMAL",
    _T.INTERVAL: "INTERVAL",
}
TYPE_NAMES = sorted(set(ALLOWED_TYPES.values()) - {"DECIMAL"}) + ["DECIMAL(p,s)"]

# Date parts accepted as the unit of date_trunc / date_diff / INTERVAL (written from this list).
DATE_UNITS = (
    "year",
    "quarter",
    "month",
    "week",
    "day",
    "hour",
    "minute",
    "second",
    "decade",
    "century",
    "millennium",
)
_UNIT_ALIASES = {u + "s": u for u in DATE_UNITS} | {"years": "year", "days": "day"}

# Operators: node -> SQL written between the (parenthesised) operands.
_BINARY = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.NullSafeEQ: "IS NOT DISTINCT FROM",
    exp.NullSafeNEQ: "IS DISTINCT FROM",
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.IntDiv: "//",
    exp.Mod: "%",
    exp.DPipe: "||",
    exp.Like: "LIKE",
    exp.ILike: "ILIKE",
}
# Flags sqlglot sets on some nodes without changing their DuckDB meaning.
_FLAGS = {"safe", "coalesce", "ignore_nulls", "nested"}

# Functions sqlglot knows as typed nodes: node -> (DuckDB name, argument keys in call order,
# how many of them are required). The names listed to the user are the spellings accepted.
_FUNCTIONS: dict[type[exp.Expression], tuple[str, tuple[str, ...], int]] = {
    exp.Lower: ("lower", ("this",), 1),
    exp.Upper: ("upper", ("this",), 1),
    exp.Length: ("length", ("this",), 1),
    exp.Abs: ("abs", ("this",), 1),
    exp.Year: ("year", ("this",), 1),
    exp.Month: ("month", ("this",), 1),
    exp.Day: ("day", ("this",), 1),
    exp.Quarter: ("quarter", ("this",), 1),
    exp.DayOfWeek: ("dayofweek", ("this",), 1),
    exp.DayOfWeekIso: ("isodow", ("this",), 1),
    exp.Substring: ("substring", ("this", "start", "length"), 2),
    exp.Round: ("round", ("this", "decimals"), 1),
    exp.StartsWith: ("starts_with", ("this", "expression"), 2),
    exp.EndsWith: ("ends_with", ("this", "expression"), 2),
    exp.Contains: ("contains", ("this", "expression"), 2),
    exp.RegexpLike: ("regexp_matches", ("this", "expression", "flag"), 2),
    exp.Nullif: ("nullif", ("this", "expression"), 2),
    exp.Left: ("left", ("this", "expression"), 2),
    exp.Right: ("right", ("this", "expression"), 2),
    exp.StrPosition: ("strpos", ("this", "substr"), 2),
    exp.Replace: ("replace", ("this", "expression", "replacement"), 3),
}
# Functions sqlglot does not know (exp.Anonymous): lower-case name -> DuckDB name.
_ANONYMOUS = {name: name for name in ("strip_accents", "suffix", "prefix", "date_part", "nfc_normalize")} | {
    "datepart": "date_part"
}

ALLOWED_FUNCTION_NAMES = sorted(
    {
        "abs",
        "coalesce",
        "concat",
        "contains",
        "current_date",
        "date_diff",
        "date_part",
        "datepart",
        "date_trunc",
        "datediff",
        "day",
        "dayofweek",
        "ends_with",
        "greatest",
        "if",
        "ifnull",
        "iif",
        "isodow",
        "lcase",
        "least",
        "left",
        "length",
        "lower",
        "lpad",
        "ltrim",
        "month",
        "nfc_normalize",
        "nullif",
        "prefix",
        "quarter",
        "regexp_matches",
        "replace",
        "right",
        "round",
        "rpad",
        "rtrim",
        "starts_with",
        "strip_accents",
        "strpos",
        "substring",
        "substr",
        "suffix",
        "today",
        "trim",
        "ucase",
        "upper",
        "year",
    }
)

_INTEGER = re.compile(r"^\d{1,38}$")
_DECIMAL = re.compile(r"^(\d{1,38}\.\d{0,38}|\.\d{1,38})$")
_FLOAT = re.compile(r"^(\d{1,38}(\.\d{0,38})?|\.\d{1,38})[eE][+-]?\d{1,3}$")


# A function call is a name followed by "(": a plain or quoted word (or a keyword spelling an allowed
# function: left, replace, current_date...), except CAST / TRY_CAST and a type's parameters after AS or ::.
_NAME_TOKENS = {sqlglot.TokenType.VAR, sqlglot.TokenType.IDENTIFIER}
_SYNTAX_WORDS = {"cast", "try_cast"}
_TYPE_POSITION = {sqlglot.TokenType.ALIAS, sqlglot.TokenType.DCOLON}


def _refuse(detail: str) -> BadInput:
    return BadInput(f"--where refused: {detail}")


class _FunctionRefused(BadInput):
    """The compiler met a function node it does not write; `names`: the node's possible spellings."""

    def __init__(self, names: list[str]):
        super().__init__(f"--where refused: function {names[0]}() is not allowed")
        self.names = names


def _not_allowed(name: str) -> BadInput:
    return _refuse(f"function {name}() is not allowed (allowed: {', '.join(ALLOWED_FUNCTION_NAMES)})")


def _describe(node: exp.Expression) -> str:
    if isinstance(node, (exp.Select, exp.Subquery, exp.Exists, exp.Union, exp.Query)):
        return "subqueries are not allowed"
    if isinstance(node, (exp.Placeholder, exp.Parameter, exp.SessionParameter)):
        return "parameters (?, $1) are not allowed"
    if isinstance(node, exp.Func):
        names = [node.name] if isinstance(node, exp.Anonymous) else (node.sql_names() or [node.key])
        raise _FunctionRefused([n.lower() for n in names])
    if isinstance(node, exp.Star):
        return "* is not allowed"
    if isinstance(node, exp.Alias):
        return "aliases are not allowed (a hexadecimal number or a misplaced word?)"
    return f"{node.key} expressions are not allowed (only columns, literals, operators and whitelisted functions)"


def _check_text(text: str) -> list[str]:
    """Refuses what the tree would hide: comments, several statements, and too long or too deep texts;
    returns the function names called, as written (lower case), in order.

    Runs on the tokens (an iterative scan), before the recursive parser sees a deep text.
    """
    if not text or not text.strip():
        raise _refuse("empty expression")
    if len(text) > MAX_CHARS:
        raise _refuse(f"the expression is longer than {MAX_CHARS:,} characters")
    try:
        tokens = sqlglot.tokenize(text, read="duckdb")
    except (TokenError, ParseError) as exc:
        raise _refuse(f"cannot read it ({str(exc).splitlines()[0]})") from None
    position = depth = 0
    calls: list[str] = []
    for i, tok in enumerate(tokens):
        # Whatever lies between two tokens must be blank: anything else is a comment.
        if text[position : tok.start].strip() or tok.comments:
            raise _refuse("comments are not allowed")
        position = tok.end + 1
        if tok.token_type == sqlglot.TokenType.SEMICOLON:
            raise _refuse("only one expression is allowed (no ';')")
        if tok.token_type == sqlglot.TokenType.L_PAREN:
            before = tokens[i - 1] if i else None
            if (
                before is not None
                and (before.token_type in _NAME_TOKENS or before.text.lower() in ALLOWED_FUNCTION_NAMES)
                and before.text.lower() not in _SYNTAX_WORDS
                and not (i > 1 and tokens[i - 2].token_type in _TYPE_POSITION)
            ):
                calls.append(before.text.lower())
            depth += 1
            if depth > MAX_DEPTH:
                raise _refuse(f"more than {MAX_DEPTH} nested parentheses")
        elif tok.token_type == sqlglot.TokenType.R_PAREN:
            depth -= 1
    if text[position:].strip():
        raise _refuse("comments are not allowed")
    return calls


def _check_shape(tree: exp.Expression) -> None:
    """Node count and nesting depth (a chain of AND / OR counts as one level), iteratively."""
    stack = [(tree, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise _refuse(f"the expression has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise _refuse(f"the expression is nested more than {MAX_DEPTH} levels deep")
        for child in node.iter_expressions():
            same_chain = isinstance(node, (exp.And, exp.Or)) and type(child) is type(node)
            stack.append((child, depth if same_chain else depth + 1))


class _Compiler:
    """Writes DuckDB SQL for a checked sqlglot tree; literals go to `params`, in order."""

    def __init__(self, columns: list[str] | set[str]):
        self.by_lower = {c.lower(): c for c in columns}
        self.used: set[str] = set()
        self.params: list = []

    # -- helpers ---------------------------------------------------------------------------------

    def _args(self, node: exp.Expression, allowed: set[str]) -> None:
        """Refuses a known node carrying an argument this compiler would not write (never drop one)."""
        for key, value in node.args.items():
            if key.startswith("_") or value is None or value is False or value == []:
                continue
            if key in _FLAGS and isinstance(value, bool):
                continue
            if key in allowed:
                continue
            if key in ("query", "unnest") or isinstance(value, (exp.Query, exp.Subquery)):
                raise _refuse("subqueries are not allowed")
            if isinstance(node, exp.Column) and key in ("table", "db", "catalog"):
                raise _refuse(f"qualified name {node.sql()} is not allowed; use the bare column name")
            raise _refuse(f"this form of {node.key} is not supported ({key})")

    def _unit(self, node: exp.Expression | None) -> str:
        if isinstance(node, exp.Var) or (isinstance(node, exp.Literal) and node.is_string):
            name = node.name.lower()
            name = _UNIT_ALIASES.get(name, name)
            for unit in DATE_UNITS:
                if unit == name:
                    return unit
        raise _refuse(f"unknown date part (expected one of {', '.join(DATE_UNITS)})")

    def _literal(self, node: exp.Literal) -> str:
        text = node.this
        if node.is_string:
            self.params.append(text)
        elif _INTEGER.match(text):
            self.params.append(int(text))
        elif _DECIMAL.match(text):
            self.params.append(Decimal(text))
        elif _FLOAT.match(text):
            self.params.append(float(text))
        else:
            raise _refuse(f"cannot read the number {text!r}")
        return "?"

    def _type(self, node: exp.Expression) -> str:
        if not isinstance(node, exp.DataType) or node.this not in ALLOWED_TYPES:
            raise _refuse(f"cast to an unsupported type (allowed: {', '.join(TYPE_NAMES)})")
        self._args(node, {"this", "expressions"})
        name = ALLOWED_TYPES[node.this]
        params = node.expressions
        if name != "DECIMAL":
            if params and name != "VARCHAR":
                raise _refuse(f"type {name} takes no parameters")
            return name  # VARCHAR(n): DuckDB ignores n
        if not params:
            return name
        values = []
        for p in params:
            lit = p.this if isinstance(p, exp.DataTypeParam) else p
            if not (isinstance(lit, exp.Literal) and not lit.is_string and _INTEGER.match(lit.this)):
                raise _refuse("DECIMAL(p,s) needs integer precision and scale")
            values.append(int(lit.this))
        if (
            len(values) > 2
            or not 1 <= values[0] <= 38
            or (len(values) == 2 and not 0 <= values[1] <= values[0])
        ):
            raise _refuse("DECIMAL(p,s) needs 1 <= p <= 38 and 0 <= s <= p")
        return f"DECIMAL({', '.join(str(v) for v in values)})"

    def _call(self, name: str, args: list[exp.Expression]) -> str:
        return f"{name}({', '.join(self.sql(a) for a in args)})"

    # -- the tree --------------------------------------------------------------------------------

    def sql(self, node: exp.Expression) -> str:
        t = type(node)
        if t is exp.Column:
            self._args(node, {"this"})
            if not isinstance(node.this, exp.Identifier):
                raise _refuse("* is not allowed" if isinstance(node.this, exp.Star) else _describe(node.this))
            canonical = self.by_lower.get(node.this.name.lower())
            if canonical is None:
                raise _refuse(f"unknown column {node.this.name!r} (see `mirror export --list-columns`)")
            self.used.add(canonical)
            return '"' + canonical.replace('"', '""') + '"'
        if t is exp.Literal:
            self._args(node, {"this", "is_string"})
            return self._literal(node)
        if t is exp.Boolean:
            return "TRUE" if node.this else "FALSE"
        if t is exp.Null:
            return "NULL"
        if t is exp.Paren:
            self._args(node, {"this"})
            return f"({self.sql(node.this)})"
        if t in (exp.And, exp.Or):
            # A long chain is flattened (no recursion per operand).
            parts = list(node.flatten())
            word = " AND " if t is exp.And else " OR "
            return "(" + word.join(self.sql(p) for p in parts) + ")"
        if t is exp.Not:
            self._args(node, {"this"})
            return f"(NOT {self.sql(node.this)})"
        if t is exp.Neg:
            self._args(node, {"this"})
            return f"(- {self.sql(node.this)})"
        if t in _BINARY:
            self._args(node, {"this", "expression"})
            if isinstance(node.expression, (exp.Any, exp.All)):
                raise _refuse("ANY / ALL are not allowed")
            return f"({self.sql(node.this)} {_BINARY[t]} {self.sql(node.expression)})"
        if t is exp.Escape:
            self._args(node, {"this", "expression"})
            like = node.this
            if type(like) not in (exp.Like, exp.ILike):
                raise _refuse("ESCAPE goes with LIKE / ILIKE")
            self._args(like, {"this", "expression"})
            op = _BINARY[type(like)]
            return (
                f"({self.sql(like.this)} {op} {self.sql(like.expression)} ESCAPE {self.sql(node.expression)})"
            )
        if t is exp.Is:
            self._args(node, {"this", "expression"})
            if not isinstance(node.expression, (exp.Null, exp.Boolean)):
                raise _refuse("IS takes NULL, TRUE or FALSE (use IS DISTINCT FROM to compare)")
            return f"({self.sql(node.this)} IS {self.sql(node.expression)})"
        if t is exp.In:
            self._args(node, {"this", "expressions"})
            if not node.expressions:
                raise _refuse("IN needs a list of values")
            return f"({self.sql(node.this)} IN ({', '.join(self.sql(e) for e in node.expressions)}))"
        if t is exp.Between:
            self._args(node, {"this", "low", "high"})
            return f"({self.sql(node.this)} BETWEEN {self.sql(node.args['low'])} AND {self.sql(node.args['high'])})"
        if t is exp.Case:
            self._args(node, {"this", "ifs", "default"})
            out = ["CASE"]
            if node.this is not None:
                out.append(self.sql(node.this))
            for branch in node.args.get("ifs") or []:
                if type(branch) is not exp.If:
                    raise _refuse(_describe(branch))
                self._args(branch, {"this", "true"})
                out.append(f"WHEN {self.sql(branch.this)} THEN {self.sql(branch.args['true'])}")
            if node.args.get("default") is not None:
                out.append(f"ELSE {self.sql(node.args['default'])}")
            out.append("END")
            return "(" + " ".join(out) + ")"
        if t is exp.If:  # if(c, a, b) / iif
            self._args(node, {"this", "true", "false"})
            # Written in textual order: the parameters follow the order of the "?".
            out = f"(CASE WHEN {self.sql(node.this)} THEN {self.sql(node.args['true'])}"
            if node.args.get("false") is not None:
                out += f" ELSE {self.sql(node.args['false'])}"
            return out + " END)"
        if t in (exp.Cast, exp.TryCast):
            self._args(node, {"this", "to"})
            word = "TRY_CAST" if t is exp.TryCast else "CAST"
            return f"{word}({self.sql(node.this)} AS {self._type(node.args.get('to'))})"
        if t is exp.Interval:
            self._args(node, {"this", "unit"})
            value = node.this
            if not isinstance(value, exp.Literal):
                raise _refuse("INTERVAL takes a number or a quoted text, e.g. INTERVAL 30 DAY")
            if node.args.get("unit") is None:
                self.params.append(value.name)  # INTERVAL '1 month 2 days'
            else:
                unit = self._unit(node.args["unit"])
                if not (_INTEGER.match(value.name) or _DECIMAL.match(value.name)):
                    raise _refuse(f"INTERVAL {value.name!r} {unit}: expected a number")
                self.params.append(f"{value.name} {unit}")
            return "CAST(? AS INTERVAL)"
        if t is exp.CurrentDate:
            self._args(node, set())
            return "current_date"
        if t is exp.Trim:
            self._args(node, {"this", "expression", "position"})
            position = str(node.args.get("position") or "BOTH").upper()
            name = {"LEADING": "ltrim", "TRAILING": "rtrim", "BOTH": "trim"}.get(position)
            if name is None:
                raise _refuse("trim: unknown position")
            args = [node.this] + ([node.expression] if node.expression is not None else [])
            return self._call(name, args)
        if t in (exp.Coalesce, exp.Least, exp.Greatest):
            self._args(node, {"this", "expressions"})
            name = {exp.Coalesce: "coalesce", exp.Least: "least", exp.Greatest: "greatest"}[t]
            return self._call(name, [node.this, *node.expressions])
        if t is exp.Concat:
            self._args(node, {"expressions"})
            return self._call("concat", list(node.expressions))
        if t is exp.Pad:
            self._args(node, {"this", "expression", "fill_pattern", "is_left"})
            if node.args.get("fill_pattern") is None:
                raise _refuse("lpad / rpad need three arguments: text, length, fill")
            name = "lpad" if node.args.get("is_left") else "rpad"
            return self._call(name, [node.this, node.expression, node.args["fill_pattern"]])
        if t in (exp.TimestampTrunc, exp.DateTrunc):
            self._args(node, {"this", "unit"})
            return f"date_trunc('{self._unit(node.args.get('unit'))}', {self.sql(node.this)})"
        if t is exp.DateDiff:
            self._args(node, {"this", "expression", "unit"})
            unit = self._unit(node.args.get("unit") or exp.var("day"))
            return f"date_diff('{unit}', {self.sql(node.expression)}, {self.sql(node.this)})"
        if t in _FUNCTIONS:
            name, keys, required = _FUNCTIONS[t]
            self._args(node, set(keys))
            args = [node.args.get(k) for k in keys]
            while args and args[-1] is None:
                args.pop()
            if len(args) < required or any(a is None for a in args):
                raise _refuse(f"{name}() needs {required} argument(s)")
            return self._call(name, args)
        if t is exp.Anonymous:
            self._args(node, {"this", "expressions"})
            name = _ANONYMOUS.get(node.name.lower())
            if name is None:
                raise _refuse(_describe(node))
            return self._call(name, list(node.expressions))
        raise _refuse(_describe(node))


def compile_where(text: str, columns: list[str] | set[str]) -> tuple[str, list, set[str]]:
    """Checks `text`; returns (DuckDB SQL written from the checked tree, its parameters, columns used).

    `columns` are the names the expression may reference (matched case-insensitively, as DuckDB does);
    the SQL names them in their canonical spelling.
    """
    calls = _check_text(text)
    unknown = [name for name in calls if name not in ALLOWED_FUNCTION_NAMES]
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except (ParseError, TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise _refuse(f"not a valid SQL expression ({first})") from None
    except RecursionError:
        raise _refuse(f"the expression is nested more than {MAX_DEPTH} levels deep") from None
    if tree is None:
        raise _refuse("empty expression")
    _check_shape(tree)
    compiler = _Compiler(columns)
    try:
        sql = compiler.sql(tree)
    except _FunctionRefused as exc:
        if unknown:  # the name the user wrote, never sqlglot's name for its node
            raise _not_allowed(unknown[0]) from None
        written = next((n for n in exc.names if n in calls), None)
        if written is not None:  # an allowed name sqlglot read into a node not written here (another arity)
            raise _refuse(f"{written}() cannot be used this way here (check its arguments)") from None
        if not any(n in ALLOWED_FUNCTION_NAMES for n in exc.names):  # a keyword call: DATE(...), VALUES(...)
            raise _not_allowed(exc.names[0]) from None
        raise _refuse(f"this use of {', '.join(f'{n}()' for n in calls)} is not supported") from None
    if unknown:  # read by sqlglot as an allowed node (e.g. len as length): still not a documented name
        raise _not_allowed(unknown[0])
    return sql, compiler.params, compiler.used
