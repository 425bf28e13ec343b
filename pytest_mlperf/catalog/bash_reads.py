"""Which variables a bash script reads without a default on every run, as `set -u` sees them: the part of a shell
reader that NVIDIA's job scripts need, not a bash parser.

A lexer walks the text once: quotes (single, double, $'...'), comments, here-documents (a quoted delimiter's body
is literal, an unquoted one's expands), command and arithmetic substitutions, and the operators that end a command.
It yields each command's words and the variables it reads (`$X`, `${X...}` with its operator, names inside
`$(( ))`). A second pass follows the structure: what runs on every run (top level, loop bodies, if conditions, a
function's body where the function is called at top level), what runs only sometimes (if/elif/else bodies, case
arms, uncalled functions), and what is assigned by then (`X=`, export/readonly/local/declare, read, for, mapfile,
`${X:=...}`; an assignment made in every branch of an if with an else counts after its fi).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# bash's own, Slurm's in every job, the login environment's: never the submitter's business
PROVIDED = re.compile(
    r"^(SLURM_\w+|SLURMD_\w+|PWD|OLDPWD|HOME|USER|LOGNAME|PATH|SHELL|HOSTNAME|RANDOM|BASH\w*|PPID|UID|EUID|IFS|"
    r"LINENO|SECONDS|FUNCNAME|OSTYPE|HOSTTYPE|MACHTYPE|SHLVL|PIPESTATUS|OPTIND|OPTARG|REPLY|GROUPS|EPOCH\w*|"
    r"SRANDOM|COLUMNS|LINES|TERM)$"
)
DEFAULTING = (":-", ":=", ":+", "-", "=", "+")
ASSIGNING_BUILTINS = {"export", "readonly", "local", "declare", "typeset"}


@dataclass
class Ref:
    name: str
    op: str  # "", ":-", "?", ... the expansion's operator ("" for $X and plain ${X})
    line: int


@dataclass
class Command:
    words: list[tuple[str, bool, int]] = field(default_factory=list)  # (text, fully unquoted, line)
    refs: list[Ref] = field(default_factory=list)
    span: tuple[int, int] = (0, 0)  # its text: from its first word to the operator that ended it


class _Lexer:
    def __init__(self, text: str):
        self.text, self.i, self.line = text, 0, 1
        self.commands: list[Command] = []
        self.current = Command()
        self.word: list[str] = []
        self.word_quoted = False
        self.word_line = 1
        self.heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, quoted, strip tabs)
        self.in_array = False
        self.start: int | None = None

    # ---- characters ------------------------------------------------------------------------------------------
    def peek(self, n: int = 0) -> str:
        j = self.i + n
        return self.text[j] if j < len(self.text) else ""

    def run(self) -> list[Command]:
        while self.i < len(self.text):
            self.step()
        self.end_command()
        return self.commands

    def step(self) -> None:  # noqa: C901 (one branch a character class, as a lexer reads)
        c = self.peek()
        if c == "\\" and self.peek(1) == "\n":
            self.i += 2
            self.line += 1
        elif c == "\n" and self.in_array:  # NAME=( ... ) may span lines
            self.end_word()
            self.i += 1
            self.line += 1
        elif c == ")" and self.in_array:
            self.in_array = False
            self.word.append(")")
            self.i += 1
        elif c in "<>" and self.peek(1) == "(":  # process substitution: a nested command
            self.nested(self.balanced(self.i + 2, "(", ")"))
            self.word.append("<()")
        elif c == "&" and (self.peek(1) == ">" or (self.word and self.word[-1] in "<>")):
            self.word.append(c)  # a redirection (&>, 2>&1), not the end of a command
            self.i += 1
        elif c == "\n":
            self.end_command()
            self.i += 1
            self.line += 1
            self.read_heredocs()
        elif c in " \t\r":
            self.end_word()
            self.i += 1
        elif c == "#" and not self.word:
            while self.i < len(self.text) and self.peek() != "\n":
                self.i += 1
        elif c in ";&|":
            op = c + (self.peek(1) if self.peek(1) in "&|;" and self.peek(1) else "")
            self.end_command()
            self.i += len(op)
        elif c in "()" and not self.word:
            self.end_word()
            self.add_word(c, True)
            self.end_word()
            self.i += 1
        elif c == "(" and self.word and "".join(self.word).endswith("="):
            self.word.append("(")  # an array assignment, NAME=( ... ): its words are this command's
            self.in_array = True
            self.i += 1
        elif c == ")" and self.word and "(" not in "".join(self.word):
            self.end_word()
            self.add_word(")", True)
            self.end_word()
            self.i += 1
        elif c == "<" and self.peek(1) == "<" and self.peek(2) != "<" and not (self.word and self.word[-1] == "<"):
            self.here_operator()
        else:
            self.word_char()

    def word_char(self) -> None:
        c = self.peek()
        if not self.word:
            self.word_line = self.line
            self.mark_start()
        if c == "'":
            self.word_quoted = True
            self.i += 1
            while self.i < len(self.text) and self.peek() != "'":
                self.count_newline(self.peek())
                self.i += 1
            self.i += 1
            self.word.append("''")
        elif c == "$" and self.peek(1) == "'":
            self.word_quoted = True
            self.i += 2
            while self.i < len(self.text) and self.peek() != "'":
                self.i += 2 if self.peek() == "\\" else 1
            self.i += 1
            self.word.append("''")
        elif c == '"':
            self.word_quoted = True
            self.i += 1
            self.double_quoted()
            self.word.append('""')
        elif c == "$":
            self.dollar()
        elif c == "`":
            self.backticks()
            self.word.append("``")
        elif c == "\\":
            self.word.append(self.peek(1))
            self.word_quoted = True
            self.i += 2
        else:
            self.word.append(c)
            self.i += 1

    def backticks(self) -> None:
        """`command`: the old form of a command substitution."""
        self.i += 1
        start = self.i
        while self.i < len(self.text) and self.peek() != "`":
            self.i += 2 if self.peek() == "\\" else 1
        self.nested(self.text[start : self.i])
        self.i += 1

    def count_newline(self, c: str) -> None:
        if c == "\n":
            self.line += 1

    def double_quoted(self) -> None:
        while self.i < len(self.text) and self.peek() != '"':
            c = self.peek()
            if c == "\\":
                self.count_newline(self.peek(1))
                self.i += 2
            elif c == "$":
                self.dollar(inside_word=False)
            elif c == "`":
                self.backticks()
            else:
                self.count_newline(c)
                self.i += 1
        self.i += 1

    # ---- expansions ------------------------------------------------------------------------------------------
    def dollar(self, inside_word: bool = True) -> None:
        nxt = self.peek(1)
        if nxt == "(" and self.peek(2) == "(":
            body = self.balanced(self.i + 3, "((", "))")
            self.arithmetic(body)
        elif nxt == "(":
            body = self.balanced(self.i + 2, "(", ")")
            self.nested(body)
        elif nxt == "{":
            body = self.balanced(self.i + 2, "{", "}")
            self.braced(body)
        elif NAME.match(self.text, self.i + 1):
            name = NAME.match(self.text, self.i + 1).group(0)
            self.current.refs.append(Ref(name, "", self.line))
            self.i += 1 + len(name)
        else:
            self.i += 2 if nxt and (nxt.isdigit() or nxt in "@*#?$!-_") else 1
        if inside_word:
            self.word.append("$x")

    def balanced(self, start: int, opening: str, closing: str) -> str:
        """The text up to the matching `closing` (quotes skipped over), leaving self.i after it."""
        depth, j = 1, start
        quote = ""
        while j < len(self.text):
            c = self.text[j]
            if quote:
                if c == "\\" and quote == '"':
                    j += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c == "\\":
                j += 1
            elif self.text.startswith(closing, j) and depth == 1:
                break
            elif c == opening[0]:
                depth += 1
            elif c == closing[0]:
                depth -= 1
            j += 1
        body = self.text[start:j]
        self.line += body.count("\n")
        self.i = j + len(closing)
        return body

    def braced(self, body: str) -> None:
        if body.startswith("#") and NAME.fullmatch(body[1:]):
            self.current.refs.append(Ref(body[1:], "", self.line))  # ${#X}: the length of X
            return
        match = NAME.match(body)
        if not match or body.startswith("!"):
            return  # ${1}, ${@}, ${!X}: positional, special or indirect
        rest = body[match.end() :]
        op = next((o for o in (":-", ":=", ":+", ":?", "-", "=", "+", "?") if rest.startswith(o)), "")
        self.current.refs.append(Ref(match.group(0), op, self.line))
        word = rest[len(op) :] if op else ""
        if word:
            self.nested_word(word)

    def arithmetic(self, body: str) -> None:
        for match in re.finditer(r"\$?\{?([A-Za-z_][A-Za-z0-9_]*)", body):
            if not body[max(0, match.start() - 1)].isalnum():
                self.current.refs.append(Ref(match.group(1), "", self.line))

    def nested(self, body: str) -> None:
        """A command or process substitution: what it reads with no default of its own counts where it is (a loop
        variable of its own does not); its words are not this command's."""
        inner = _Walker(_Lexer(body).run()).walk()
        self.current.refs.extend(Ref(r.name, r.op, self.line) for r in inner.required.values())

    def nested_word(self, word: str) -> None:
        inner = _Lexer(word)
        inner.word_char()
        while inner.i < len(inner.text):
            inner.word_char()
        self.current.refs.extend(Ref(r.name, r.op, self.line) for r in inner.current.refs)

    # ---- here-documents --------------------------------------------------------------------------------------
    def here_operator(self) -> None:
        self.end_word()
        self.i += 2
        strip = self.peek() == "-"
        self.i += 1 if strip else 0
        while self.i < len(self.text) and self.peek() in " \t":
            self.i += 1
        start = self.i
        while self.i < len(self.text) and self.peek() not in " \t\n;&|<>()":
            self.i += 1
        raw = self.text[start : self.i]
        delimiter = raw.replace("'", "").replace('"', "").replace("\\", "")
        self.heredocs.append((delimiter, delimiter != raw, strip))

    def read_heredocs(self) -> None:
        for delimiter, quoted, strip in self.heredocs:
            while self.i < len(self.text):
                end = self.text.find("\n", self.i)
                end = len(self.text) if end < 0 else end
                line = self.text[self.i : end]
                self.i = end + 1
                self.line += 1
                if (line.lstrip("\t") if strip else line) == delimiter:
                    break
                if not quoted:  # quotes are literal in a body; $ expands
                    scan = _Lexer(line)
                    scan.body_refs()
                    previous = self.commands[-1] if self.commands else self.current
                    previous.refs.extend(Ref(r.name, r.op, self.line - 1) for r in scan.current.refs)
        self.heredocs = []

    def body_refs(self) -> None:
        while self.i < len(self.text):
            if self.peek() == "$":
                self.dollar(inside_word=False)
            elif self.peek() == "\\":
                self.i += 2
            else:
                self.i += 1

    # ---- words and commands ------------------------------------------------------------------------------------
    def mark_start(self) -> None:
        if self.start is None:
            self.start = self.i

    def add_word(self, text: str, unquoted: bool) -> None:
        self.mark_start()
        self.current.words.append((text, unquoted, self.line))

    def end_word(self) -> None:
        if self.word:
            self.current.words.append(("".join(self.word), not self.word_quoted, self.word_line))
        self.word, self.word_quoted = [], False

    def end_command(self) -> None:
        self.end_word()
        if self.current.words or self.current.refs:
            self.current.span = (self.start if self.start is not None else self.i, self.i)
            self.commands.append(self.current)
        self.current = Command()
        self.start = None


@dataclass
class Analysis:
    required: dict[str, Ref]  # variable -> where a run first reads it with no default (and how)
    spans: list[tuple[int, int]] = field(default_factory=list)  # the text of the commands every run runs (offsets)


class _Walker:
    """The structural pass over the commands."""

    def __init__(self, commands: list[Command]):
        self.commands = commands
        self.functions: dict[str, list[Command]] = {}
        self.required: dict[str, Ref] = {}
        self.spans: list[tuple[int, int]] = []

    def walk(self) -> Analysis:
        self.block(self.commands, 0, set(), conditional=False, stop=())
        return Analysis(self.required, self.spans)

    def block(self, cmds: list[Command], i: int, assigned: set[str], *, conditional: bool, stop: tuple) -> int:
        """Walk commands from i until a command starting with a word in `stop`; returns its index."""
        while i < len(cmds):
            first = _first(cmds[i])
            if first in stop:
                return i
            i = self.command(cmds, i, assigned, conditional)
        return i

    def command(self, cmds: list[Command], i: int, assigned: set[str], conditional: bool) -> int:
        cmd = cmds[i]
        words = [w for w, _, _ in cmd.words]
        first = _first(cmd)
        if first == "if":
            return self.if_block(cmds, i, assigned, conditional)
        if first in ("for", "while", "until", "select"):
            return self.loop(cmds, i, assigned, conditional)
        if first == "case":
            j = i + 1
            while j < len(cmds) and _first(cmds[j]) != "esac":
                self.reads(cmds[j], set(assigned), True)
                j += 1
            return j + 1
        if first in ("{", "}", "(", ")", "then", "do", "done", "fi", "else", "elif", "esac"):
            self.reads(_without_first(cmd), assigned, conditional)
            return i + 1
        name = _function_name(words)
        if name is not None:
            return self.function(cmds, i, name)
        if words and words[0] in self.functions and not conditional:
            self.block(self.functions[words[0]], 0, assigned, conditional=False, stop=())
        self.reads(cmd, assigned, conditional)
        return i + 1

    def if_block(self, cmds: list[Command], i: int, assigned: set[str], conditional: bool) -> int:
        branches: list[set[str]] = []
        has_else = False
        self.reads(_without_first(cmds[i]), assigned, conditional)  # the condition runs whenever the if does
        j = i + 1
        j = self.block(cmds, j, assigned, conditional=conditional, stop=("then",))
        while j < len(cmds):
            head = _first(cmds[j])
            if head == "fi":
                break
            branch = set(assigned)
            if head == "else":
                has_else = True
            self.reads(_without_first(cmds[j]), branch, True)
            j = self.block(cmds, j + 1, branch, conditional=True, stop=("elif", "else", "fi", "then"))
            if j < len(cmds) and _first(cmds[j]) == "then":
                continue
            branches.append(branch)
        if has_else and branches:
            assigned |= set.intersection(*branches)
        if j < len(cmds):
            self.reads(_without_first(cmds[j]), assigned, conditional)
        return j + 1

    def loop(self, cmds: list[Command], i: int, assigned: set[str], conditional: bool) -> int:
        words = [w for w, _, _ in cmds[i].words]
        if words[0] in ("for", "select") and len(words) > 1 and NAME.fullmatch(words[1]):
            assigned.add(words[1])
        self.reads(cmds[i], assigned, conditional)
        j = self.block(cmds, i + 1, assigned, conditional=conditional, stop=("done",))
        if j < len(cmds):
            self.reads(_without_first(cmds[j]), assigned, conditional)
        return j + 1

    def function(self, cmds: list[Command], i: int, name: str) -> int:
        depth, body, j = 0, [], i
        while j < len(cmds):
            for word, unquoted, _ in cmds[j].words:
                if unquoted and word == "{":
                    depth += 1
                elif unquoted and word == "}":
                    depth -= 1
            body.append(cmds[j])
            j += 1
            if depth <= 0 and any(w == "}" for w, _, _ in cmds[j - 1].words):
                break
        self.functions[name] = _body(body)
        return j

    def reads(self, cmd: Command, assigned: set[str], conditional: bool) -> None:
        words = cmd.words
        if not conditional:
            self.spans.append(cmd.span)
        for ref in cmd.refs:
            if ref.op in DEFAULTING or ref.name in assigned or PROVIDED.match(ref.name):
                if ref.op in (":=", "="):
                    assigned.add(ref.name)
                continue
            if not conditional:
                self.required.setdefault(ref.name, ref)
        assigned.update(_assignments([w for w, unquoted, _ in words], [u for _, u, _ in words]))


def _body(definition: list[Command]) -> list[Command]:
    """A function's commands without its header (`name() {`, `function name {`) and closing brace."""
    header = definition[0]
    words = [w for w, _, _ in header.words]
    cut = words.index("{") + 1 if "{" in words else len(words)
    first = replace(header, words=header.words[cut:])
    out = [first, *definition[1:]]
    last = out[-1]
    if last.words and last.words[-1][0] == "}":
        out[-1] = replace(last, words=last.words[:-1])
    return [c for c in out if c.words or c.refs]


def _first(cmd: Command) -> str:
    for word, unquoted, _ in cmd.words:
        return word if unquoted else ""
    return ""


def _without_first(cmd: Command) -> Command:
    return replace(cmd, words=cmd.words[1:])


def _function_name(words: list[str]) -> str | None:
    if len(words) >= 2 and words[0] == "function":
        name = words[1].removesuffix("()")
        return name if NAME.fullmatch(name) else None
    if words and words[0].endswith("()") and NAME.fullmatch(words[0][:-2]):
        return words[0][:-2]
    if len(words) >= 3 and NAME.fullmatch(words[0]) and words[1:3] == ["(", ")"]:
        return words[0]
    return None


def _assignments(words: list[str], unquoted: list[bool]) -> set[str]:
    """Names a simple command assigns: leading NAME=..., export/readonly/local/declare NAME[=...], read NAME...,
    mapfile/readarray NAME."""
    out: set[str] = set()
    k = 0
    while k < len(words) and (m := re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\+?=", words[k])):
        out.add(m.group(1))
        k += 1
    if k >= len(words):
        return out
    head, rest = words[k], words[k + 1 :]
    if head in ASSIGNING_BUILTINS or head in ("read", "mapfile", "readarray"):
        for word in rest:
            if word.startswith("-"):
                continue
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(\+?=|$)", word)
            if m:
                out.add(m.group(1))
            if head in ("mapfile", "readarray") and m:
                break
    return out


def analyze(text: str) -> Analysis:
    """What a run of the script reads without a default, and which lines run on every run. ValueError for a script
    nested too deeply to read (command substitutions hundreds deep)."""
    try:
        return _Walker(_Lexer(text).run()).walk()
    except RecursionError:
        raise ValueError("command substitutions nested too deeply to read") from None
