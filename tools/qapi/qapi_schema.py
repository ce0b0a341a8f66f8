"""Reads QEMU's QAPI schema sources (qapi/*.json) into plain Python objects.

The files are a sequence of JSON-like expressions with single-quoted
strings, `true`/`false` and `#` comments. Each expression defines one entity
(enum, struct, union, alternate, command, event) or includes another file;
an entity belongs to the module (file) that defines it. Only interface facts
are kept: names, members, types, optionality, conditions, features. The
documentation comments are skipped.
"""

import os


class SchemaError(Exception):
    pass


def _parse_exprs(text, path):
    pos = 0
    n = len(text)
    line = 1

    def error(msg):
        raise SchemaError(f"{path}:{line}: {msg}")

    def skip():
        nonlocal pos, line
        while pos < n:
            c = text[pos]
            if c == '\n':
                line += 1
                pos += 1
            elif c in ' \t\r':
                pos += 1
            elif c == '#':
                while pos < n and text[pos] != '\n':
                    pos += 1
            else:
                break

    def value():
        nonlocal pos
        skip()
        if pos >= n:
            error("unexpected end of file")
        c = text[pos]
        if c == '{':
            pos += 1
            out = {}
            skip()
            if text[pos] == '}':
                pos += 1
                return out
            while True:
                k = value()
                if not isinstance(k, str):
                    error("a key must be a string")
                skip()
                if text[pos] != ':':
                    error("expected ':'")
                pos += 1
                if k in out:
                    error(f"duplicate key '{k}'")
                out[k] = value()
                skip()
                if text[pos] == ',':
                    pos += 1
                    continue
                if text[pos] == '}':
                    pos += 1
                    return out
                error("expected ',' or '}'")
        if c == '[':
            pos += 1
            out = []
            skip()
            if text[pos] == ']':
                pos += 1
                return out
            while True:
                out.append(value())
                skip()
                if text[pos] == ',':
                    pos += 1
                    continue
                if text[pos] == ']':
                    pos += 1
                    return out
                error("expected ',' or ']'")
        if c == "'":
            end = text.find("'", pos + 1)
            if end < 0:
                error("unterminated string")
            s = text[pos + 1:end]
            if '\\' in s:
                error("escapes in strings are not expected")
            pos = end + 1
            return s
        for word, v in (('true', True), ('false', False)):
            if text.startswith(word, pos):
                pos += len(word)
                return v
        error(f"unexpected character {c!r}")

    exprs = []
    while True:
        skip()
        if pos >= n:
            return exprs
        start_line = line
        e = value()
        if not isinstance(e, dict):
            error("a top-level expression must be an object")
        exprs.append((e, start_line))


META = ('enum', 'struct', 'union', 'alternate', 'command', 'event')


class Entity:
    """One definition: `meta` is one of META; `expr` the expression as read."""

    def __init__(self, meta, name, expr, module, where):
        self.meta = meta
        self.name = name
        self.expr = expr
        self.module = module
        self.where = where

    def features(self):
        return [f['name'] if isinstance(f, dict) else f for f in self.expr.get('features', [])]


def load(schema_dir, top='qapi-schema.json'):
    """Every entity reachable from `top`, in definition order."""
    entities = []
    seen = set()

    def visit(fname):
        path = os.path.join(schema_dir, fname)
        if path in seen:
            return
        seen.add(path)
        module = os.path.splitext(os.path.basename(fname))[0]
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for e, ln in _parse_exprs(text, path):
            if 'include' in e:
                visit(os.path.join(os.path.dirname(fname), e['include']))
                continue
            if 'pragma' in e:
                continue
            metas = [m for m in META if m in e]
            if len(metas) != 1:
                raise SchemaError(f"{path}:{ln}: expected one of {META}")
            entities.append(Entity(metas[0], e[metas[0]], e, module, f"{fname}:{ln}"))

    visit(top)
    return entities


def members(data):
    """A member dict of the schema as (name, type, optional, features, if)."""
    out = []
    for k, v in (data or {}).items():
        optional = k.startswith('*')
        name = k[1:] if optional else k
        feats, cond = [], None
        if isinstance(v, dict):
            feats = [f['name'] if isinstance(f, dict) else f for f in v.get('features', [])]
            cond = v.get('if')
            v = v['type']
        out.append((name, v, optional, feats, cond))
    return out


def enum_values(data):
    out = []
    for v in data:
        if isinstance(v, dict):
            out.append((v['name'], [f['name'] if isinstance(f, dict) else f for f in v.get('features', [])]))
        else:
            out.append((v, []))
    return out
