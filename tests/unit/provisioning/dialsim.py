"""A small model of Asterisk running our rendered dialplan for one dial string.

Enough of Asterisk for the contexts we render: extension matching (literal names and
``_`` patterns with X N Z [..] . !, a context's own extensions before its includes, in
order), PJSIP's answer when nothing matches (404, or 484 when the string is a proper
prefix of something that could match: overlap dialling is on by default; '-' in the
dialled string is skipped, as Asterisk does), and the
applications the templates use. Admission (``cp-admit``) is assumed to admit; what
it was asked about is recorded. Unknown applications or conditions raise, so a
template change that this model does not understand fails the tests instead of
passing them by accident. The e2e (tests/e2e/test_dialstrings.py) checks this model
against a real Asterisk on a corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CAUSE_TO_SIP = {21: 403, 17: 486, 28: 484, 34: 503, 1: 404, 3: 404}


@dataclass
class Exten:
    name: str
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (label, app, data)


@dataclass
class Context:
    includes: list[str] = field(default_factory=list)
    extens: list[Exten] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    sip: int | None = None  # a refusal: the SIP final response the caller gets
    trunk: str | None = None  # Dial(PJSIP/<number>@<trunk>): the trunk endpoint ...
    number: str | None = None  # ... and the number it receives
    endpoint: str | None = None  # Dial(PJSIP/<endpoint>): a phone
    admitted: tuple[str, ...] = ()  # cp-admit was asked (tenant, number)
    other: str = ""  # anything else that ends the call (Echo, an announcement)


def parse(text: str) -> dict[str, Context]:
    contexts: dict[str, Context] = {}
    current: Context | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        if line.startswith("["):
            current = contexts.setdefault(line.strip()[1:-1], Context())
            continue
        assert current is not None, line
        if line.startswith("include => "):
            current.includes.append(line.split("=> ", 1)[1].strip())
        elif line.startswith("exten => "):
            name, _, rest = line[len("exten => "):].partition(",")
            _prio, _, call = rest.partition(",")
            current.extens.append(Exten(name))
            current.extens[-1].steps.append(("", *_app(call)))
        elif line.startswith(" same => "):
            head, _, call = line[len(" same => "):].partition(",")
            label = head[2:-1] if head.startswith("n(") else ""
            current.extens[-1].steps.append((label, *_app(call)))
        else:
            raise AssertionError(f"unparsed dialplan line: {line!r}")
    return contexts


def _app(call: str) -> tuple[str, str]:
    app, _, data = call.partition("(")
    return app, data[:-1] if data.endswith(")") else data


def _tokens(pattern: str) -> list[str]:
    """A pattern as a list of character sets ('' = any, '.'/'!' = one or more / zero or more)."""
    out: list[str] = []
    i = 0
    sets = {"X": "0123456789", "N": "23456789", "Z": "123456789"}
    while i < len(pattern):
        ch = pattern[i]
        if ch == "[":
            end = pattern.index("]", i)
            body, chars = pattern[i + 1:end], ""
            j = 0
            while j < len(body):
                if j + 2 < len(body) and body[j + 1] == "-":
                    chars += "".join(chr(c) for c in range(ord(body[j]), ord(body[j + 2]) + 1))
                    j += 3
                else:
                    chars += body[j]
                    j += 1
            out.append(chars)
            i = end + 1
            continue
        out.append(sets.get(ch.upper(), ch) if ch not in ".!" else ch)
        i += 1
    return out


def _match(name: str, s: str, *, prefix: bool = False) -> bool:
    """``s`` matches the extension ``name`` (or, with ``prefix``, could still become a match).

    Asterisk skips '-' in what was dialled ("eye candy"): ``+1212-555-0100`` matches
    ``_+1NXXNXXXXXX`` and ${EXTEN} keeps the dashes (the dial context's guard refuses it).
    """
    s = s.replace("-", "")
    if not name.startswith("_"):
        return name.startswith(s) and len(s) < len(name) if prefix else name == s
    tokens = _tokens(name[1:])
    for i, token in enumerate(tokens):
        if token in (".", "!"):
            return len(s) > i or prefix or token == "!"
        if i >= len(s):
            return prefix
        if s[i] not in token:
            return False
    return len(s) == len(tokens) and not prefix


def find(contexts: dict[str, Context], context: str, s: str, *, prefix: bool = False) -> Exten | None:
    ctx = contexts.get(context)
    if ctx is None:
        return None
    own = [e for e in ctx.extens if _match(e.name, s, prefix=prefix)]
    literal = [e for e in own if not e.name.startswith("_")]
    if literal or own:
        return (literal or own)[0]
    for inc in ctx.includes:
        hit = find(contexts, inc, s, prefix=prefix)
        if hit is not None:
            return hit
    return None


def _subst(text: str, exten: str, endpoint: str) -> str:
    def one(m: re.Match[str]) -> str:
        var = m.group(1)
        if var == "EXTEN":
            return exten
        if var.startswith("EXTEN:"):
            return exten[int(var[6:]):]
        if var == "CHANNEL(endpoint)":
            return endpoint
        return m.group(0)
    return re.sub(r"\$\{([A-Z]+(?::\d+)?|CHANNEL\(endpoint\))\}", one, text)


def _condition(expr: str, exten: str, endpoint: str) -> bool:
    guard = re.fullmatch(r"\$\[\$\{LEN\(\$\{FILTER\(0123456789,\$\{EXTEN:1\}\)\}\)\} \+ 1 = \$\{LEN\(\$\{EXTEN\}\)\}\]",
                         expr)
    if guard:
        return sum(c in "0123456789" for c in exten[1:]) + 1 == len(exten)
    if re.fullmatch(r"\$\{DIALPLAN_EXISTS\([a-z0-9]+-flows,[^,]+,1\)\}", expr):
        # the flows contexts are applied over AMI, not part of this file: the model checks the
        # fallback a tenant gets while its flows context is not there
        return False
    equal = re.fullmatch(r'\$\["(.*)" = "(.*)"\]', _subst(expr, exten, endpoint))
    if equal and "${" not in expr.replace("${CHANNEL(endpoint)}", ""):
        return equal.group(1) == equal.group(2)
    raise AssertionError(f"condition not modelled: {expr}")


def run(contexts: dict[str, Context], context: str, exten: str, endpoint: str, depth: int = 0) -> Outcome:
    assert depth < 10, "Goto loop"
    ext = find(contexts, context, exten)
    if ext is None:
        return Outcome(sip=404)
    admitted: tuple[str, ...] = ()
    i = 0
    while i < len(ext.steps):
        _label, app, data = ext.steps[i]
        i += 1
        if app in ("Set", "NoOp", "Log", "Answer", "ExecIf", "Return", "Playback"):
            continue
        if app == "Goto":
            parts = _subst(data, exten, endpoint).split(",")
            if len(parts) == 1:
                i = _label_index(ext, parts[0])
                continue
            if parts[0].endswith("-emergency"):  # e911.routing's own tests cover what happens there
                return Outcome(admitted=admitted, other=f"emergency {parts[1]}")
            out = run(contexts, parts[0], parts[1], endpoint, depth + 1)
            return Outcome(out.sip, out.trunk, out.number, out.endpoint, admitted + out.admitted, out.other)
        if app == "GotoIf":
            cond, _, targets = data.rpartition("?")
            yes, _, no = targets.partition(":")
            target = yes if _condition(cond, exten, endpoint) else no
            if target:
                i = _label_index(ext, target)
            continue
        if app == "Gosub":
            assert data.startswith("cp-admit,out,1(") or data.startswith("cp-admit,in,1("), data
            admitted += (_subst(data, exten, endpoint).split("1(", 1)[1].rstrip(")"),)
            continue
        if app == "Hangup":
            return Outcome(sip=CAUSE_TO_SIP[int(data)] if data else None, admitted=admitted, other="hangup")
        if app == "Dial":
            target = _subst(data, exten, endpoint).split(",")[0]
            assert target.startswith("PJSIP/"), target
            resource = target[len("PJSIP/"):]
            if "@" in resource:
                number, trunk = resource.split("@", 1)
                return Outcome(trunk=trunk, number=number, admitted=admitted)
            return Outcome(endpoint=resource, admitted=admitted)
        if app == "Echo":
            return Outcome(admitted=admitted, other="echo")
        raise AssertionError(f"application not modelled: {app}({data})")
    return Outcome(admitted=admitted, other="fell off")


def _label_index(ext: Exten, label: str) -> int:
    for i, (name, _, _) in enumerate(ext.steps):
        if name == label:
            return i
    raise AssertionError(f"no label {label} in {ext.name}")


def dial(text_or_contexts: str | dict[str, Context], context: str, s: str, endpoint: str) -> Outcome:
    """What a phone (``endpoint``, entering ``context``) gets for the Request-URI user ``s``."""
    contexts = parse(text_or_contexts) if isinstance(text_or_contexts, str) else text_or_contexts
    if find(contexts, context, s) is None:
        return Outcome(sip=484 if find(contexts, context, s, prefix=True) is not None else 404)
    return run(contexts, context, s, endpoint)
